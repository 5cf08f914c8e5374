"""Widgets every page shows: page setup, the active-configuration badge, photo input."""

from __future__ import annotations

import streamlit as st

from gmx import __version__
from gmx.config import GmxConfig
from ui import resources, state

DEMO_WARNING = (
    "**Synthetic demo — not for clinical use.** The model and gallery are trained on synthetic "
    "phenotypes; their answers say nothing about real patients."
)


def page_setup(title: str, icon: str = "🧬") -> GmxConfig:
    """Configure the page, draw the sidebar badge, return the active configuration."""
    st.set_page_config(page_title=f"{title} · gmx", page_icon=icon, layout="wide")
    state.keep_settings()
    cfg = resources.active_config()
    with st.sidebar:
        if cfg.is_demo:
            st.warning(DEMO_WARNING, icon="🧪")
        else:
            st.info(f"Using your files ({cfg.source}).", icon="🔒")
        st.caption(
            f"gmx {__version__} · models: {', '.join(p.name for p in cfg.model_paths)} · "
            f"gallery: {cfg.gallery_path.name} · TTA flip={'on' if cfg.flip else 'off'}, "
            f"grey={'on' if cfg.grey else 'off'}"
        )
    return cfg


def page_link(page: str, label: str, icon: str) -> None:
    """A link to another page of the app (plain text when the page runs alone, as in AppTest)."""
    from streamlit.errors import StreamlitPageNotFoundError

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.caption(f"{label}: open it from the sidebar.")


def current_photo() -> tuple[bytes, str] | None:
    """The photo chosen on the Diagnose page (bytes kept in memory only), or ``None``."""
    data = state.get(state.PHOTO_BYTES)
    if data is None:
        return None
    return data, state.get(state.PHOTO_NAME, "photo")


def require_photo() -> tuple[bytes, str]:
    """The current photo, or a hint to pick one on the Diagnose page (stops the page)."""
    photo = current_photo()
    if photo is None:
        st.info("No photo yet: choose one on the **Diagnose** page first.", icon="👈")
        page_link("pages/1_Diagnose.py", "Go to Diagnose", "🔎")
        st.stop()
    return photo  # type: ignore[return-value]
