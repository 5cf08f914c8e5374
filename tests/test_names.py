"""No two classes of the library share a public name (two ``Agreement`` classes once did: one in
``gmx.explain.compare``, one in ``gmx.metrics.agreement``)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import gmx

PACKAGE = Path(gmx.__file__).resolve().parent


def _top_level(kind: type[ast.AST]) -> dict[str, list[str]]:
    """Public top-level definitions of ``kind`` in gmx: name -> the files defining it."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, kind) and not node.name.startswith("_"):  # type: ignore[attr-defined]
                found[node.name].append(str(path.relative_to(PACKAGE)))  # type: ignore[attr-defined]
    return found


def test_public_class_names_are_unique() -> None:
    shared = {name: files for name, files in _top_level(ast.ClassDef).items() if len(files) > 1}
    assert shared == {}


def _cross_package_private_imports() -> list[str]:
    """``from gmx.<other>... import _name`` or ``from gmx.<other>._module import ...`` in a module
    of another part of the library (the library-wide ``gmx._io`` etc. are meant to be shared)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        own = parts[0] if len(parts) > 1 else None  # the subpackage, None for gmx/<module>.py
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gmx.")):
                continue
            module = node.module.split(".")  # type: ignore[union-attr]
            if module[1] == own or module[1].startswith("_"):
                continue
            where = f"{path.relative_to(PACKAGE)}: {node.module}"
            if any(part.startswith("_") for part in module[2:]):
                found.append(f"{where} (private module)")
            found += [f"{where}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_private_names_are_imported_across_packages() -> None:
    """What one part of gmx uses of another has a public name in its home (once: the report took
    DEMO_NOTICE from gmx.gallery._rank, gmx.regions the faithfulness metrics' ``_Scorer``)."""
    assert _cross_package_private_imports() == []


def _dataclass_fields() -> dict[tuple[tuple[str, str], ...], list[str]]:
    """Fields (name, annotation) of every dataclass in gmx with two or more -> where defined."""
    found: dict[tuple[tuple[str, str], ...], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            if not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                continue
            fields = tuple(
                (s.target.id, ast.unparse(s.annotation))
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            )
            if len(fields) > 1:
                found[fields].append(f"{path.relative_to(PACKAGE)}:{node.name}")
    return found


def test_no_two_dataclasses_have_the_same_fields() -> None:
    """One result type per idea (``gmx.metrics.scorecard.ScorecardRun`` once restated
    :class:`gmx.aggregate.BatchRun` field for field)."""
    same = {k: v for k, v in _dataclass_fields().items() if len(v) > 1}
    assert same == {}
