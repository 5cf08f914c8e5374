"""Demo example photos and the photo preview."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from gmx.align import AlignmentResult
from gmx.config import DEMO_DIR, GmxConfig
from gmx.viz import image_figure
from ui import resources

EXAMPLES_DIR = DEMO_DIR / "examples"
#: Longest side of the photo preview, in pixels; its height on the page.
PREVIEW_SIDE = 720
PREVIEW_HEIGHT = 340
#: Demo faces per row of the picker.
PICKER_COLUMNS = 6


def example_files() -> list[Path]:
    """The demo's example photos (synthetic test patients), sorted by name."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(
        p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )


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
    columns = st.columns(PICKER_COLUMNS)
    chosen = None
    for i, path in enumerate(files):
        with columns[i % PICKER_COLUMNS]:
            st.image(resources.example_bytes(str(path)), width="stretch")
            if st.button(path.stem.replace("_", " "), key=f"example-{path.name}", width="stretch"):
                chosen = (resources.example_bytes(str(path)), path.name)
    return chosen


def photo_figure(data: bytes, alignment: AlignmentResult, title: str) -> go.Figure:
    """The photo (downscaled for display) with a numbered box around every face found."""
    image, factor = resources.photo_preview(data, PREVIEW_SIDE)
    boxes = [tuple(c * factor for c in f.box) for f in alignment.faces]
    return image_figure(
        image,
        boxes=boxes,
        box_labels=[str(i + 1) for i in range(len(boxes))],
        height=PREVIEW_HEIGHT,
        title=title,
    )
