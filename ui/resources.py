"""Every ``st.cache_resource`` / ``st.cache_data`` of the app lives here.

Models, galleries and the aligner are resources shared by all sessions (never mutated); per-photo work
is cached by the photo's bytes, in memory only, with a bounded number of entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from gmx.align import AlignedFace
from gmx.config import GmxConfig, load_config
from gmx.errors import ConfigError, GmxError
from gmx.pipeline import Diagnoser, Diagnosis
from gmx.similarity import (
    ActivationStore,
    PairExplainer,
    PairMaps,
    QueryActivations,
    load_activations,
    sidecar_path,
)
from ui import state


def active_config() -> GmxConfig:
    """The configuration of this session: settings-panel override, else ``GMX_CONFIG``/env, else demo."""
    cfg = state.get(state.CONFIG)
    if cfg is None:
        try:
            cfg = load_config()
        except ConfigError as exc:  # a bad GMX_CONFIG: say what and where, never a traceback
            st.error(f"The configuration could not be read: {exc}")
            st.stop()
        st.session_state[state.CONFIG] = cfg
    return cfg


def default_config_source() -> str:
    """Where the default configuration comes from, or why it cannot be read."""
    try:
        return load_config().source
    except ConfigError as exc:
        return f"unreadable ({exc})"


@st.cache_resource(show_spinner=False, max_entries=2)
def _diagnoser(
    model_paths: tuple[str, ...],
    gallery_path: str,
    flip: bool,
    grey: bool,
    device: str,
    precision: str = "fp32",
) -> Diagnoser:
    cfg = GmxConfig(
        model_paths=tuple(Path(p) for p in model_paths),
        gallery_path=Path(gallery_path),
        flip=flip,
        grey=grey,
        device=device,
        precision=precision,
    )
    return Diagnoser.from_config(cfg)


def diagnoser(cfg: GmxConfig | None = None) -> Diagnoser:
    """The shared :class:`Diagnoser` for a configuration; stops the page with a clear error if it
    cannot be loaded."""
    cfg = cfg or active_config()
    try:
        with st.spinner("Loading models and gallery…"):
            return _diagnoser(
                tuple(str(p) for p in cfg.model_paths),
                str(cfg.gallery_path),
                cfg.flip,
                cfg.grey,
                cfg.device,
                cfg.precision,
            )
    except (GmxError, OSError, ValueError) as exc:
        st.error(f"Could not load the models or the gallery: {exc}")
        if cfg.is_demo:
            st.info(
                "The embedded demo files are missing from `models/demo/`: is this a full checkout?"
            )
        else:
            st.info("Check the paths in the settings on the Home page (or your `GMX_CONFIG` file).")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_data(show_spinner=False, max_entries=16)
def diagnose_photo(
    config_key: tuple[str, ...], data: bytes, face_index: int, min_distance: float | None
) -> Diagnosis:
    """Diagnosis of a photo, cached in memory by (configuration, photo bytes, face, threshold)."""
    del config_key  # part of the cache key only
    return diagnoser().diagnose(data, face_index=face_index, min_distance=min_distance)


def config_key(cfg: GmxConfig) -> tuple[str, ...]:
    """A hashable key that changes whenever the configuration does."""
    return (
        *map(str, cfg.model_paths),
        str(cfg.gallery_path),
        str(cfg.flip),
        str(cfg.grey),
        cfg.device,
        cfg.precision,
    )


# --- explanations -----------------------------------------------------------------------------
class _MapStore:
    """Bounded, thread-safe store of finished explanations, shared by sessions (values are frozen
    AttributionMaps with read-only arrays). Keyed by (photo hash, configuration, face, target,
    variants, method, parameters), so nothing is computed twice and nothing is mixed up."""

    def __init__(self, max_items: int) -> None:
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_items

    def get(self, key: tuple) -> object | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: object) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def map_store() -> _MapStore:
    """The process-wide store of computed attribution maps (in memory only)."""
    return _MapStore(max_items=2000)


# --- similarity -------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=2)
def _pair_explainer(
    config_key: tuple[str, ...], gallery_path: str, _diagnoser: Diagnoser
) -> PairExplainer:
    del config_key  # part of the cache key only
    ensemble, gallery = _diagnoser.ensemble, _diagnoser.gallery
    sidecar = sidecar_path(gallery_path)
    arrays = load_activations(sidecar, gallery) if sidecar.is_file() else None
    store = ActivationStore(ensemble, gallery, sidecar=arrays)
    return PairExplainer(ensemble, gallery, store=store)


def pair_explainer(cfg: GmxConfig | None = None) -> PairExplainer:
    """The shared :class:`~gmx.similarity.PairExplainer` (folded heads, gallery maps); stops the
    page with a clear message when the models have no affine head or the sidecar is unusable."""
    cfg = cfg or active_config()
    diag = diagnoser(cfg)
    try:
        return _pair_explainer(config_key(cfg), str(cfg.gallery_path), diag)
    except (GmxError, ValueError) as exc:
        st.error(f"Similarity maps are not available with these models or this gallery: {exc}")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_data(show_spinner=False, max_entries=16)
def similarity_query(
    config_key: tuple[str, ...],
    photo_sha256: str,
    face_index: int,
    _explainer: PairExplainer,
    _face: AlignedFace,
) -> QueryActivations:
    """The query face's feature maps (one forward pass), cached by (configuration, photo, face)."""
    del config_key, photo_sha256, face_index  # the cache key
    return _explainer.query(_face)


@st.cache_data(show_spinner=False, max_entries=32)
def similarity_pairs(
    config_key: tuple[str, ...],
    photo_sha256: str,
    face_index: int,
    image_indices: tuple[int, ...],
    method: str,
    split: str,
    params: tuple[tuple[str, int], ...],
    _explainer: PairExplainer,
    _face: AlignedFace,
    _query: QueryActivations,
    _progress: Callable[[int, int], None] | None = None,
) -> tuple[PairMaps, ...]:
    """Paired maps of the query with gallery images, cached by everything that changes them."""
    del config_key, photo_sha256, face_index  # the cache key
    return _explainer.explain(
        _face,
        list(image_indices),
        method=method,
        query=_query,
        split=split,  # type: ignore[arg-type]
        params=dict(params) or None,
        progress=_progress,
    )


# --- syndromes --------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=8)
def syndrome_results(path: str, mtime: float):
    """Syndrome-level results (:class:`gmx.aggregate.SyndromeResults`) from a file, shared by all
    sessions; ``mtime`` is part of the key so a recomputed file is reloaded."""
    del mtime  # cache key only
    from gmx.aggregate import load_results

    return load_results(path)


@st.cache_data(show_spinner=False, max_entries=256)
def syndrome_overlay(
    path: str, mtime: float, syndrome: str, method: str, kind: str, palette: str, opacity: float
):
    """``(112, 112, 3)`` uint8 map over the syndrome's composite face (cached per view); ``palette``
    is a label of :data:`gmx.viz.PALETTES`."""
    from ui import syndromes_view

    return syndromes_view.overlay_image(
        syndrome_results(path, mtime), syndrome, method, kind, palette, opacity
    )
