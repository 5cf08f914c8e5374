"""Widgets every page shows: the pages and their navigation, page setup (demo banner, configuration
badge), links between pages, the current photo; and the on-demand checks toggle of the pages that
draw maps (Explain, Similarity).

Every icon is a Material icon (``:material/name:``), drawn with the font Streamlit ships: emoji render as
empty boxes on machines without an emoji font (many hospital Linux desktops).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from gmx import __version__
from gmx.config import GmxConfig
from ui import auth, resources, state


@dataclass(frozen=True)
class AppPage:
    """One page of the app: its script (relative to ``app.py``), title and icon in the navigation, the
    one-line summary on the Home cards, and its URL path (``""`` for the default page)."""

    script: str
    title: str
    icon: str
    summary: str
    url_path: str


PAGES: tuple[AppPage, ...] = (
    AppPage("pages/0_Home.py", "Home", ":material/home:",
            "What is active (demo or your files), and settings.", ""),
    AppPage("pages/1_Diagnose.py", "Diagnose", ":material/stethoscope:",
            "Photo → aligned face → top-k syndromes with their nearest gallery patients.",
            "Diagnose"),
    AppPage("pages/2_Explain.py", "Explain", ":material/layers:",
            "Attribution maps of the top syndromes, many methods, one shared colour scale.",
            "Explain"),
    AppPage("pages/3_Similarity.py", "Similarity", ":material/compare:",
            "What makes your patient look like each nearest gallery patient, on both faces.",
            "Similarity"),
    AppPage("pages/4_Syndromes.py", "Syndromes", ":material/genetics:",
            "Where the model looks for a syndrome across all its patients; composite faces.",
            "Syndromes"),
    AppPage("pages/5_Use_case.py", "Use case", ":material/route:",
            "One demo patient through every page to a case report, step by step.", "Use_case"),
    AppPage("pages/6_Scorecard.py", "Scorecard", ":material/fact_check:",
            "Which maps to trust: faithfulness, sanity and localisation of every method.",
            "Scorecard"),
    AppPage("pages/7_Study.py", "Study", ":material/assignment:",
            "Clinician study: your impression, the model's answer, blinded maps rated.", "Study"),
    AppPage("pages/8_Study_analysis.py", "Study analysis", ":material/monitoring:",
            "A study's Likert answers, rater agreement, arms and where raters looked.",
            "Study_analysis"),
)  # fmt: skip
HOME = PAGES[0]

ICON_DEMO = ":material/science:"
ICON_PRIVATE = ":material/lock:"
ICON_HINT = ":material/arrow_back:"

DEMO_WARNING = (
    "**Synthetic demo — not for clinical use.** Trained on synthetic phenotypes; its answers say "
    "nothing about real patients."
)
PRIVACY_NOTE = (
    "Photos stay in memory and are never written to disk unless you export something. No telemetry."
)
ABOUT = (
    "**gmx** — an explainability explorer for GestaltMatcher. "
    "Photos stay in this app's memory; nothing is sent anywhere."
)


#: Set once ``app.py`` has declared the navigation in this process (see :func:`_use_app_navigation`).
_NAVIGATION_DECLARED = threading.Event()


def navigation() -> StreamlitPage:
    """The app's pages with their titles and icons (call once, in ``app.py``, then ``.run()``)."""
    _NAVIGATION_DECLARED.set()
    return st.navigation(
        [
            st.Page(
                p.script,
                title=p.title,
                icon=p.icon,
                url_path=p.url_path or None,
                default=p is HOME,
            )
            for p in PAGES
        ]
    )


def _use_app_navigation() -> None:
    """Make sure the page runs under ``app.py``'s navigation (titles and icons in the sidebar).

    Streamlit decides once per server whether an app uses its old ``pages/``-folder navigation (pages
    named by file, Home shown as "app", no icons): yes while a ``pages/`` folder exists and no script
    has called ``st.navigation`` yet. So when the first visit to a fresh server opens a page other
    than Home (a bookmark of ``/Diagnose``), that page runs without ``app.py``. Then switch the old
    mode off (the flag ``st.navigation`` clears) and run again, through ``app.py``. This happens at
    most once per server, on a first page load (no click to lose).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if not _NAVIGATION_DECLARED.is_set() and getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _page(script: str) -> AppPage | None:
    return next((p for p in PAGES if p.script == script), None)


def page_setup(title: str) -> GmxConfig:
    """Configure the page, show the synthetic-demo banner in the main area (visible on a phone, where
    the sidebar is closed), draw the sidebar badge; return the active configuration.

    On a shared server (:func:`ui.resources.shared_mode`) the sign-in comes first
    (:func:`ui.auth.gate`): until it succeeds, or when the server may not start, nothing of the page
    is drawn."""
    _use_app_navigation()
    entry = next((p for p in PAGES if p.title == title), HOME)
    st.set_page_config(
        page_title=f"{title} · gmx",
        page_icon=entry.icon,
        layout="wide",
        menu_items={"About": ABOUT},
    )
    state.keep_settings()
    shared = resources.shared_mode()
    user = auth.gate(shared) if shared is not None else None  # sign-in first (shared server)
    cfg = resources.active_config()
    if cfg.is_demo:
        st.warning(DEMO_WARNING, icon=ICON_DEMO)
    with st.sidebar:
        if not cfg.is_demo:
            st.info(f"Using your files ({cfg.source}).", icon=ICON_PRIVATE)
        st.caption(
            f"gmx {__version__} · models: {', '.join(p.name for p in cfg.model_paths)} · "
            f"gallery: {cfg.gallery_path.name} · TTA flip={'on' if cfg.flip else 'off'}, "
            f"grey={'on' if cfg.grey else 'off'}"
        )
        if user is not None and shared is not None:
            auth.account(user, shared)
    return cfg


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page of the app, with that page's icon unless ``icon`` is given (plain text
    when the page runs alone, as in AppTest)."""
    from streamlit.errors import StreamlitPageNotFoundError

    entry = _page(page)
    try:
        st.page_link(page, label=label, icon=icon or (entry.icon if entry else None))
    except StreamlitPageNotFoundError:
        st.caption(f"{label}: open it from the sidebar.")


#: Page cards per row on Home (eight in one row wrapped every title mid-word).
CARDS_PER_ROW = 4


def page_cards() -> None:
    """One card per page (except Home): title, what it shows, a link to it."""
    pages = [p for p in PAGES if p is not HOME]
    for start in range(0, len(pages), CARDS_PER_ROW):
        row = pages[start : start + CARDS_PER_ROW]
        for column, page in zip(st.columns(CARDS_PER_ROW), row, strict=False):
            with column.container(border=True, height="stretch"):
                st.markdown(f"#### {page.icon} {page.title}")
                st.write(page.summary)
                page_link(page.script, f"Open {page.title}")


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
        st.info("No photo yet: choose one on the **Diagnose** page first.", icon=ICON_HINT)
        page_link("pages/1_Diagnose.py", "Go to Diagnose")
        st.stop()
    return photo  # type: ignore[return-value]


@dataclass(frozen=True)
class ChecksRequest:
    """Whether a page's checks of its maps are wanted (they cost forward passes: only on demand)."""

    on: bool


def checks_controls(label: str, *, key: str, help: str) -> ChecksRequest:
    """The toggle of a page's checks of its maps (off by default): Explain's per-photo checks,
    Similarity's pair-map checks. Each page passes its own ``key``, so they never share state."""
    return ChecksRequest(bool(st.toggle(label, key=key, help=help)))
