"""Demo example photos and the photo preview."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from gmx.align import AlignmentResult, load_image
from gmx.config import DEMO_DIR, GmxConfig
from gmx.viz import downscale, image_figure

EXAMPLES_DIR = DEMO_DIR / "examples"
PREVIEW_SIDE = 720


def example_files() -> list[Path]:
    """The demo's example photos (synthetic test patients), sorted by name."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(
        p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _thumbnail(path: str) -> bytes:
    return Path(path).read_bytes()


def picker(cfg: GmxConfig) -> tuple[bytes, str] | None:
    """A grid of demo faces; returns the clicked one's bytes and name."""
    files = example_files()
    if not cfg.is_demo:
        st.info(
            "Demo faces belong to the embedded demo; switch back to it on the Home page to use them."
        )
        return None
    if not files:
        st.warning(f"No demo faces found in `{EXAMPLES_DIR}`.")
        return None
    st.caption("Synthetic test patients (never seen in training). Click one to diagnose it.")
    columns = st.columns(6)
    chosen = None
    for i, path in enumerate(files):
        with columns[i % 6]:
            st.image(_thumbnail(str(path)), width="stretch")
            if st.button(path.stem.replace("_", " "), key=f"example-{path.name}", width="stretch"):
                chosen = (path.read_bytes(), path.name)
    return chosen


@st.cache_data(show_spinner=False, max_entries=8)
def _preview(data: bytes) -> tuple[object, float]:
    return downscale(load_image(data), PREVIEW_SIDE)


def photo_figure(data: bytes, alignment: AlignmentResult, title: str) -> go.Figure:
    """The photo (downscaled for display) with a numbered box around every face found."""
    image, factor = _preview(data)
    boxes = [tuple(c * factor for c in f.box) for f in alignment.faces]
    return image_figure(
        image,
        boxes=boxes,
        box_labels=[str(i + 1) for i in range(len(boxes))],
        height=340,
        title=title,
    )
