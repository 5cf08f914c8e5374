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
