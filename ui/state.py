"""Session-state keys shared between pages (one place, so pages agree on names)."""

from __future__ import annotations

from typing import Any

import streamlit as st

PHOTO_BYTES = "gmx.photo_bytes"
PHOTO_NAME = "gmx.photo_name"
FACE_INDEX = "gmx.face_index"
TOP_K = "gmx.top_k"
CONFIG = "gmx.config"


def get(key: str, default: Any = None) -> Any:
    """Value of a session key, or ``default``."""
    return st.session_state.get(key, default)


def set_photo(data: bytes, name: str) -> None:
    """Make ``data`` the current photo (kept in memory only) and reset the face choice."""
    if st.session_state.get(PHOTO_BYTES) != data:
        st.session_state[FACE_INDEX] = 0
    st.session_state[PHOTO_BYTES] = data
    st.session_state[PHOTO_NAME] = name


def clear_photo() -> None:
    """Forget the current photo."""
    for key in (PHOTO_BYTES, PHOTO_NAME, FACE_INDEX):
        st.session_state.pop(key, None)
