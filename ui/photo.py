"""The current photo, for every page: accepting (validated first), forgetting, and its diagnosis.

One place decides what a page shows about the photo, so that pages agree:

- :func:`accept` decodes a photo before it becomes the current one; an unreadable file is refused with
  a message and never stored.
- :func:`forget` removes the photo from the session, empties the uploader and camera, and drops
  everything derived from it from the shared stores (aligned crops, diagnoses, maps).
- :func:`diagnosis` gives the current photo's :class:`~gmx.pipeline.Diagnosis` for the chosen face,
  ranked with the near-duplicate setting of the Diagnose page, or stops the page with a message
  (no photo, unreadable photo, no face).
- :func:`require_confirmation` stops the page until the user confirmed a doubtful face
  (:func:`gmx.pipeline.face_doubts`); :func:`current` is :func:`diagnosis` + confirmation, for the
  Explain and Similarity pages.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from gmx.align import load_image
from gmx.config import GmxConfig
from gmx.constants import NEAR_DUPLICATE_DISTANCE
from gmx.errors import ImageLoadError
from gmx.pipeline import Diagnosis
from ui import auth, common, resources, state

UPLOADER_PREFIX = "gmx.uploader."
CAMERA_PREFIX = "gmx.camera."
FACE_PICKER_PREFIX = "gmx.face_picker."
DIAGNOSE_PAGE = "pages/1_Diagnose.py"


@dataclass(frozen=True)
class CurrentPhoto:
    """The current photo and its diagnosis for the chosen face.

    Attributes:
        data: the photo's bytes (kept in memory only).
        name: the file name it was uploaded with (display only).
        sha256: the photo's hash, its key in every store.
        diagnosis: the chosen face's diagnosis; ``diagnosis.ok`` is true.
        min_distance: the near-duplicate threshold used for the ranking, or ``None``.
    """

    data: bytes
    name: str
    sha256: str
    diagnosis: Diagnosis
    min_distance: float | None


# --- input ------------------------------------------------------------------------------------
def _generation() -> int:
    return int(state.get(state.INPUT_GENERATION, 0))


def uploader_key() -> str:
    """Key of the Diagnose page's file uploader (changes when the photo is forgotten)."""
    return f"{UPLOADER_PREFIX}{_generation()}"


def camera_key() -> str:
    """Key of the Diagnose page's camera input (changes when the photo is forgotten)."""
    return f"{CAMERA_PREFIX}{_generation()}"


def accept(data: bytes, name: str) -> bool:
    """Make ``data`` the current photo if it can be decoded; otherwise keep the message for
    :func:`show_refusal` and store nothing. Returns whether the photo was accepted."""
    try:
        load_image(data)
    except ImageLoadError as exc:
        st.session_state[state.PHOTO_REFUSED] = f"**{name}** cannot be used: {exc}"
        return False
    state.set_photo(data, name)
    return True


def _on_input(key: str) -> None:
    file = st.session_state.get(key)
    if file is None:  # the widget's x: the user removed the photo
        forget()
    else:
        accept(file.getvalue(), file.name)


def on_upload() -> None:
    """``on_change`` of the file uploader: accept the new file, or forget on its x."""
    _on_input(uploader_key())


def on_camera() -> None:
    """``on_change`` of the camera input: accept the new shot, or forget when it is cleared."""
    _on_input(camera_key())


def has_photo() -> bool:
    """Whether the session has a current photo."""
    return state.get(state.PHOTO_BYTES) is not None


def show_refusal() -> None:
    """The message of the last refused upload, if any."""
    refused = state.get(state.PHOTO_REFUSED)
    if refused:
        st.error(refused)
        if state.get(state.PHOTO_BYTES) is not None:
            st.caption(f"The current photo is still **{state.get(state.PHOTO_NAME, 'photo')}**.")


def forget() -> None:
    """Forget the current photo everywhere: session, uploader and camera, shared stores."""
    data = state.get(state.PHOTO_BYTES)
    sha = resources.photo_sha256(data) if data is not None else None
    if sha is not None:
        resources.forget_photo(sha)
    for key in [k for k in st.session_state if str(k).startswith((UPLOADER_PREFIX, CAMERA_PREFIX))]:
        del st.session_state[key]
    state.clear_photo(sha)
    st.session_state[state.INPUT_GENERATION] = _generation() + 1


def forget_button() -> None:
    """The "Forget this photo" button (Diagnose page)."""
    st.button("Forget this photo", on_click=forget, icon=":material/delete:")


# --- diagnosis --------------------------------------------------------------------------------
def near_duplicate_distance() -> float | None:
    """The threshold every page ranks with: the Diagnose toggle "drop near-duplicate gallery
    matches" (a kept setting) gives :data:`gmx.constants.NEAR_DUPLICATE_DISTANCE`."""
    return NEAR_DUPLICATE_DISTANCE if state.get(state.DROP_NEAR_DUPLICATES, False) else None


def diagnosis(cfg: GmxConfig, *, on_diagnose_page: bool = False) -> CurrentPhoto:
    """The current photo's diagnosis for the chosen face, or a message and ``st.stop()``.

    Without a photo: a hint (on the Diagnose page the page says it itself, so only stop).
    Unreadable photo: an error (the photo is not kept). No face: a warning.
    """
    data = state.get(state.PHOTO_BYTES)
    if data is None:
        if on_diagnose_page:
            st.stop()
        common.require_photo()  # says where to choose one, and stops
    name = str(state.get(state.PHOTO_NAME, "photo"))
    sha = resources.photo_sha256(data)
    min_distance = near_duplicate_distance()
    resources.diagnoser(cfg)  # a clear message when the models cannot be loaded
    try:
        with st.spinner("Finding faces and ranking syndromes…"):
            result = resources.diagnose_photo(
                resources.config_key(cfg),
                data,
                int(state.get(state.FACE_INDEX, 0)),
                min_distance,
            )
    except ImageLoadError as exc:
        state.clear_photo(sha)
        st.error(f"**{name}** cannot be used: {exc}")
        if not on_diagnose_page:
            st.info("Choose another photo on the **Diagnose** page.")
        st.stop()
        raise  # unreachable: st.stop() raises
    if not result.alignment.faces:
        st.warning(f"**{name}**: {result.message}")
        if on_diagnose_page:
            forget_button()
        st.stop()
    if not result.ok:  # a face index from an older photo: back to the largest face
        st.session_state[state.FACE_INDEX] = 0
        st.rerun()
    if not result.ranking.syndromes:
        st.warning(
            f"Every gallery image is a near-duplicate of **{name}** (distance ≤ {min_distance}): "
            "nothing is left to rank. Turn off *Drop near-duplicate gallery matches* on the "
            "Diagnose page."
        )
        st.stop()
    auth.record_analysis(cfg, sha, result)  # shared mode: the audit log, once per analysis
    return CurrentPhoto(data, name, sha, result, min_distance)


def confirmed(photo: CurrentPhoto) -> bool:
    """Whether the ranked face needs no confirmation or the user gave it."""
    d = photo.diagnosis
    return not d.doubts or (photo.sha256, d.face_index) in state.get(state.CONFIRMED_FACES, set())


def _confirm(sha: str, face_index: int) -> None:
    done = set(state.get(state.CONFIRMED_FACES, set()))
    done.add((sha, face_index))
    st.session_state[state.CONFIRMED_FACES] = done


def require_confirmation(photo: CurrentPhoto, *, on_diagnose_page: bool = False) -> None:
    """Stop the page until a doubtful face was confirmed (a button on the Diagnose page, a link to
    it elsewhere)."""
    if confirmed(photo):
        return
    d = photo.diagnosis
    st.warning(
        f"**Is face {d.face_index + 1} of {photo.name} really the patient's face?** "
        + "; ".join(d.doubts).capitalize()
        + ". Results are shown after you confirm it.",
        icon=":material/help:",
    )
    if on_diagnose_page:
        st.button(
            "Yes, this is the patient's face: show the results",
            on_click=_confirm,
            args=(photo.sha256, d.face_index),
        )
    else:
        common.page_link(DIAGNOSE_PAGE, "Confirm it on the Diagnose page", ":material/search:")
    st.stop()


def current(cfg: GmxConfig) -> CurrentPhoto:
    """The current photo's diagnosis, confirmed: what the Explain and Similarity pages use."""
    photo = diagnosis(cfg)
    require_confirmation(photo)
    return photo


def face_labels(d: Diagnosis) -> list[str]:
    """One label per face found, largest first (as the aligner orders them)."""
    return [
        f"Face {i + 1} ({f.quality.face_width_px:.0f} px wide{', largest' if i == 0 else ''})"
        for i, f in enumerate(d.alignment.faces)
    ]


def face_picker(photo: CurrentPhoto) -> None:
    """On a photo with several faces: which one is the patient (the largest is preselected)."""
    d = photo.diagnosis
    labels = face_labels(d)
    if len(labels) < 2:
        return
    choice = st.radio(
        f"{len(labels)} faces found — which one is the patient?",
        range(len(labels)),
        format_func=labels.__getitem__,
        horizontal=True,
        index=min(d.face_index, len(labels) - 1),
        key=f"{FACE_PICKER_PREFIX}{photo.sha256}",
    )
    if choice != d.face_index:
        st.session_state[state.FACE_INDEX] = int(choice)
        st.rerun()
