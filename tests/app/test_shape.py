"""The app's shape (house style): caches live in one module and neither read session state nor draw;
pages and ui modules leave array work to the library."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from gmx.viz import montage

ROOT = Path(__file__).resolve().parents[2]
APP_FILES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])
CACHES = {"cache_data", "cache_resource"}


def _cache_decorated(tree: ast.AST) -> list[ast.FunctionDef]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(target, ast.Attribute) and target.attr in CACHES:
                    found.append(node)
    return found


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_caches_live_in_ui_resources_only(path: Path) -> None:
    tree = ast.parse(path.read_text())
    cached = [f.name for f in _cache_decorated(tree)]
    if path != ROOT / "ui" / "resources.py":
        assert not cached, f"{path.name}: st.cache_* outside ui/resources.py: {cached}"


def test_cached_functions_neither_read_session_state_nor_draw() -> None:
    tree = ast.parse((ROOT / "ui" / "resources.py").read_text())
    functions = _cache_decorated(tree)
    assert functions  # the scan finds the module's caches
    for fn in functions:
        for node in (n for stmt in fn.body for n in ast.walk(stmt)):
            if isinstance(node, ast.Attribute) and node.attr == "session_state":
                pytest.fail(f"{fn.name} reads st.session_state")
            if isinstance(node, ast.Name) and node.id == "state":
                pytest.fail(f"{fn.name} reads ui.state")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "st"
            ):
                pytest.fail(f"{fn.name} calls st.{node.func.attr} (draws inside a cache)")


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_and_ui_leave_image_work_to_the_library(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not imported & {"cv2", "torch", "scipy", "skimage"}, (path.name, imported)
    if path.parent.name == "pages" or path.name == "app.py":
        assert "numpy" not in imported, path.name


def test_montage_enlarges_to_a_side() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 200, np.uint8)
    out = montage([a, b], columns=2, pad=1, side=8)
    assert out.shape == (1 + 8 + 1, 1 + 8 + 1 + 8 + 1, 3)
    assert (out[1:9, 1:9] == 0).all() and (out[1:9, 10:18] == 200).all()
    assert (a == 0).all() and (b == 200).all()  # inputs untouched
