"""The public surface of every stage is what docs/architecture.md says (kornia-style API test)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
STAGES = (
    "gmx.align",
    "gmx.encode",
    "gmx.gallery",
    "gmx.explain",
    "gmx.similarity",
    "gmx.aggregate",
    "gmx.metrics",
    "gmx.synth",
)


def documented() -> dict[str, list[str]]:
    """Stage -> names, from the block between the public-api markers of docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- public-api:start -->\s*```text\n(.*?)```", text, re.S)
    assert match, "docs/architecture.md has no public-api block"
    out: dict[str, list[str]] = {}
    stage = None
    for line in match.group(1).splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            stage, _, rest = line.partition(":")
            out[stage] = rest.split()
        else:
            assert stage is not None, line
            out[stage] += line.split()
    return out


def test_documented_block_covers_every_stage() -> None:
    assert sorted(documented()) == sorted(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_all_is_what_the_docs_list(stage: str) -> None:
    module = importlib.import_module(stage)
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{stage}.__all__ lists a name twice"
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == [], f"{stage}.__all__ names what the package does not define"
    current = f"{stage}: " + " ".join(sorted(names))
    assert sorted(names) == documented()[stage], (
        f"{stage}.__all__ differs from docs/architecture.md (Public API); update one of them. "
        f"Current:\n{current}"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_init_docstring_names_only_public_names(stage: str) -> None:
    # The package docstrings describe the surface; a name they cite without a module path must be
    # exported (catches docstrings that copy an old __all__).
    module = importlib.import_module(stage)
    cited = re.findall(r":(?:func|class|data|exc):`([A-Za-z_][A-Za-z0-9_]*)`", module.__doc__ or "")
    stale = sorted({n for n in cited if n not in module.__all__})
    assert stale == [], f"{stage} docstring cites names it does not export: {stale}"
