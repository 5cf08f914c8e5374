"""Session-state keys shared between pages (one place, so pages agree on names).

Settings that must survive a change of page (top-k, the near-duplicate toggle, the explanation target,
the sign, the chosen syndrome, ...) are widgets whose key comes from :func:`keep`. Streamlit deletes a
widget's state when a page without that widget runs; :func:`keep_settings`, called first on every page
(by ``ui.common.page_setup``), writes each kept value back so that it survives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

PHOTO_BYTES = "gmx.photo_bytes"
PHOTO_NAME = "gmx.photo_name"
FACE_INDEX = "gmx.face_index"
#: ``{(photo sha256, face index)}`` the user confirmed as the patient's face (see ``ui.photo``).
CONFIRMED_FACES = "gmx.confirmed_faces"
#: Why the last upload / camera shot was refused (shown until the next photo), or absent.
PHOTO_REFUSED = "gmx.photo_refused"
#: Bumped to give the uploader and camera a fresh key, which empties them (forget).
INPUT_GENERATION = "gmx.input_generation"
CONFIG = "gmx.config"
#: The signed-in user's name (shared mode, built-in passwords; see ``ui.auth``).
USER = "gmx.user"
#: Prefix of the per-photo record of analyses already written to the audit log (``ui.auth``); the
#: photo's hash follows, so it is cleared with the photo.
AUDITED_PREFIX = "gmx.audited."
KEEP_PREFIX = "gmx.keep."


def keep(name: str, default: Any = None) -> str:
    """Widget key of a setting that persists across pages, with its first value.

    Use it instead of the widget's ``value``/``index``: ``st.slider("Top-k", 1, 30,
    key=state.keep("top_k", 10))`` (passing both makes Streamlit warn on screen).
    """
    key = KEEP_PREFIX + name
    if default is not None and key not in st.session_state:
        st.session_state[key] = default
    return key


def keep_choice(name: str, options: Sequence[Any]) -> str:
    """:func:`keep` for a select box whose options change (e.g. the current top-k): a kept value
    that is no longer an option falls back to the first option."""
    key = keep(name, options[0] if options else None)
    if options and st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    return key


TOP_K = KEEP_PREFIX + "top_k"
TOP_K_DEFAULT = 10
#: The Diagnose toggle "drop near-duplicate gallery matches"; every page ranks with it (ui.photo).
DROP_NEAR_DUPLICATES = KEEP_PREFIX + "drop_near_duplicates"
#: Prefix of the per-photo "Case id" setting (the photo's hash follows).
CASE_ID_PREFIX = "case_id."
#: Prefix of the per-photo choice on a suggested facial feature (Diagnose): the photo's hash, a dot
#: and the HPO id follow; kept across pages (:func:`keep`), cleared with the photo.
HPO_CHOICE_PREFIX = "hpo_choice."


def keep_settings() -> None:
    """Re-assign every kept setting so that Streamlit does not clean it up on a page without its
    widget. Must run before any widget of the page is created."""
    for key in [k for k in st.session_state if str(k).startswith(KEEP_PREFIX)]:
        st.session_state[key] = st.session_state[key]


def get(key: str, default: Any = None) -> Any:
    """Value of a session key, or ``default``."""
    return st.session_state.get(key, default)


def set_photo(data: bytes, name: str) -> None:
    """Make ``data`` the current photo (kept in memory only) and reset the face choice.

    Callers validate first (``ui.photo.accept``): an unreadable file is never stored."""
    if st.session_state.get(PHOTO_BYTES) != data:
        st.session_state[FACE_INDEX] = 0
    st.session_state[PHOTO_BYTES] = data
    st.session_state[PHOTO_NAME] = name
    st.session_state.pop(PHOTO_REFUSED, None)


def clear_photo(photo_sha256: str | None = None) -> None:
    """Forget the current photo, the face choice and confirmations, the choices on its suggested
    facial features, and every session key that names the photo's hash (its case id, its face
    picker)."""
    for key in (PHOTO_BYTES, PHOTO_NAME, FACE_INDEX, CONFIRMED_FACES, PHOTO_REFUSED):
        st.session_state.pop(key, None)
    for key in [k for k in st.session_state if str(k).startswith(KEEP_PREFIX + HPO_CHOICE_PREFIX)]:
        del st.session_state[key]
    if photo_sha256:
        for key in [k for k in st.session_state if photo_sha256 in str(k)]:
            del st.session_state[key]
