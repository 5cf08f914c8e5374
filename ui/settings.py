"""The Home page's settings panel: point gmx at real GestaltMatcher weights and a GMDB gallery.

The form's values become a frozen :class:`SettingsRequest`. Applying it loads the models and the
gallery first (with progress); only a configuration that loaded becomes active. When loading fails the
previous configuration stays and the reason stays on screen until the next attempt.

In shared mode (:mod:`gmx.shared`) the panel has no path fields: it offers the model sets the
administrator listed, by name (:class:`SetRequest`); the loading code refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from gmx.config import GmxConfig
from gmx.encode.ensemble import PRECISIONS
from gmx.shared import NotListedError, SharedConfig
from ui import resources, state

#: Devices offered in the form (a configured ``cuda:N`` is offered too).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
#: Where a configuration applied here comes from (shown on every page).
SOURCE = "settings panel"
#: Session keys of the last attempt's outcome (shown until the next attempt).
ERROR = "gmx.settings.error"
NOTICE = "gmx.settings.notice"

HELP = (
    "Point gmx at files you are allowed to use. Supported: GestaltMatcher-Arc state_dicts, "
    "insightface ONNX, original GestaltMatcher `.pt`, gmx format. The gallery must have been "
    "built with exactly these models (`gmx gallery build`). The files are loaded and checked before "
    "they replace the active ones; they apply to this browser session only."
)


@dataclass(frozen=True)
class SettingsRequest:
    """What the settings form asks for."""

    model_paths: tuple[Path, ...]
    gallery_path: Path
    flip: bool
    grey: bool
    device: str
    precision: str

    @classmethod
    def from_form(
        cls,
        models_text: str,
        gallery_text: str,
        flip: bool,
        grey: bool,
        device: str,
        precision: str,
    ) -> SettingsRequest:
        """Parse the form: one model path per line (blank lines ignored), ``~`` expanded."""
        return cls(
            model_paths=tuple(
                Path(line.strip()).expanduser() for line in models_text.splitlines() if line.strip()
            ),
            gallery_path=Path(gallery_text.strip()).expanduser(),
            flip=flip,
            grey=grey,
            device=device,
            precision=precision,
        )

    def problems(self) -> list[str]:
        """What must be fixed before loading is worth trying (empty when nothing)."""
        if not self.model_paths:
            return ["Give at least one model file."]
        if not str(self.gallery_path).strip() or self.gallery_path == Path():
            return ["Give the gallery file."]
        missing = [str(p) for p in (*self.model_paths, self.gallery_path) if not p.is_file()]
        if missing:
            return ["These files do not exist: " + ", ".join(f"`{m}`" for m in missing)]
        return []

    def config(self) -> GmxConfig:
        """The configuration this request asks for."""
        return GmxConfig(
            model_paths=self.model_paths,
            gallery_path=self.gallery_path,
            flip=self.flip,
            grey=self.grey,
            device=self.device,
            precision=self.precision,
            source=SOURCE,
        )


SHARED_HELP = (
    "This server is shared: it offers the model sets its administrator listed. The set you choose "
    "is loaded and checked before it replaces the active one; it applies to this browser session "
    "only."
)
TITLE = "Settings: use real GestaltMatcher weights and a GMDB gallery"
SHARED_TITLE = "Settings: choose a model set"


@dataclass(frozen=True)
class SetRequest:
    """What the shared-mode settings form asks for: a listed model set, by name."""

    name: str


def describe(cfg: GmxConfig, shared: SharedConfig | None = None) -> str:
    """Markdown list of what a configuration uses (in shared mode: the set's name and file names,
    not the server's paths)."""
    if shared is not None:
        try:
            name = shared.check_listed(cfg).name
        except NotListedError:
            name = "(not a listed set)"
        return (
            f"- **Model set:** {name}\n"
            f"- **Models:** {', '.join(f'`{p.name}`' for p in cfg.model_paths)}\n"
            f"- **Gallery:** `{cfg.gallery_path.name}`\n"
            f"- **Test-time augmentation:** flip {'on' if cfg.flip else 'off'}, "
            f"grey {'on' if cfg.grey else 'off'} · **device:** {cfg.device} · "
            f"**precision:** {cfg.precision}"
        )
    return (
        f"- **Source:** {cfg.source}\n"
        f"- **Models:** {', '.join(f'`{p}`' for p in cfg.model_paths)}\n"
        f"- **Gallery:** `{cfg.gallery_path}`\n"
        f"- **Test-time augmentation:** flip {'on' if cfg.flip else 'off'}, "
        f"grey {'on' if cfg.grey else 'off'} · **device:** {cfg.device} · "
        f"**precision:** {cfg.precision}"
    )


def settings_controls(cfg: GmxConfig) -> SettingsRequest | None:
    """The settings form, filled with the active configuration; the request when Apply is pressed."""
    devices = DEVICES if cfg.device in DEVICES else (*DEVICES, cfg.device)
    with st.form("settings"):
        models_text = st.text_area(
            "Model files (one path per line, ensemble order)",
            value="\n".join(str(p) for p in cfg.model_paths),
        )
        gallery_text = st.text_input("Gallery file (.sqlite)", value=str(cfg.gallery_path))
        flip_col, grey_col, device_col, precision_col = st.columns(4)
        flip = flip_col.toggle("TTA: flip", value=cfg.flip)
        grey = grey_col.toggle("TTA: grey", value=cfg.grey)
        device = device_col.selectbox("Device", devices, index=devices.index(cfg.device))
        precision = precision_col.selectbox(
            "Precision",
            PRECISIONS,
            index=PRECISIONS.index(cfg.precision),
            help="bf16: about twice as fast on recent CPUs/GPUs, embeddings differ by ~1e-3",
        )
        if not st.form_submit_button("Load and apply", type="primary", icon=":material/check:"):
            return None
    return SettingsRequest.from_form(models_text, gallery_text, flip, grey, device, precision)


def set_controls(cfg: GmxConfig, shared: SharedConfig) -> SetRequest | None:
    """The shared-mode form: the listed model sets by name (no path can be typed); the request
    when Apply is pressed."""
    try:
        current = shared.names.index(shared.check_listed(cfg).name)
    except NotListedError:
        current = 0
    with st.form("settings"):
        name = st.selectbox("Model set", shared.names, index=current)
        if not st.form_submit_button("Load and apply", type="primary", icon=":material/check:"):
            return None
    return SetRequest(str(name))


def apply_settings(request: SettingsRequest) -> None:
    """Load the requested models and gallery (with progress), then make them this session's
    configuration and forget the photo; on failure keep the previous configuration and record why
    (shown by :func:`show_outcome` until the next attempt)."""
    st.session_state.pop(ERROR, None)
    st.session_state.pop(NOTICE, None)
    problems = request.problems()
    if problems:
        st.session_state[ERROR] = " ".join(problems)
        return
    _load_and_apply(request.config())


def apply_set(request: SetRequest, shared: SharedConfig) -> None:
    """:func:`apply_settings` for a listed model set (shared mode)."""
    st.session_state.pop(ERROR, None)
    st.session_state.pop(NOTICE, None)
    try:
        chosen = shared.set_named(request.name)
    except NotListedError as exc:
        st.session_state[ERROR] = f"**Not applied**: {exc}"
        return
    _load_and_apply(chosen.config)


def _load_and_apply(cfg: GmxConfig) -> None:
    try:
        resources.load_diagnoser(cfg)
    except resources.LOAD_ERRORS as exc:
        st.session_state[ERROR] = (
            f"**Not applied**: the previous models and gallery stay active. Could not load: {exc}"
        )
        return
    st.session_state[state.CONFIG] = cfg
    state.clear_photo()
    st.session_state[NOTICE] = (
        f"Loaded {len(cfg.model_paths)} model file(s) and the gallery `{cfg.gallery_path.name}`; "
        "they are now active for this browser session."
    )
    st.rerun()


def back_to_demo(cfg: GmxConfig) -> None:
    """A button back to the embedded demo (shown only when other files are active)."""
    if not cfg.is_demo and st.button("Back to the embedded demo", icon=":material/undo:"):
        st.session_state[state.CONFIG] = GmxConfig()
        st.session_state.pop(ERROR, None)
        st.session_state.pop(NOTICE, None)
        state.clear_photo()
        st.rerun()


def show_outcome() -> None:
    """The last attempt's error (stays until the next attempt) or confirmation."""
    if ERROR in st.session_state:
        st.error(st.session_state[ERROR], icon=":material/error:")
    elif NOTICE in st.session_state:
        st.success(st.session_state[NOTICE], icon=":material/check_circle:")


def panel(cfg: GmxConfig, shared: SharedConfig | None) -> None:
    """The settings expander of the Home page: file paths on a private app, the listed model sets
    by name in shared mode; then the outcome of the last attempt."""
    with st.expander(SHARED_TITLE if shared else TITLE, icon=":material/settings:"):
        if shared is None:
            st.caption(HELP)
            request = settings_controls(cfg)
            if request is not None:
                apply_settings(request)
            back_to_demo(cfg)
        else:
            st.caption(SHARED_HELP)
            choice = set_controls(cfg, shared)
            if choice is not None:
                apply_set(choice, shared)
    show_outcome()
