"""Every ``st.cache_resource`` / ``st.cache_data`` of the app lives here.

Models, galleries and the aligner are resources shared by all sessions (never mutated). Per-photo work
(alignment, diagnoses, previews, explanation and similarity maps) lives in bounded in-memory stores
whose keys start with the photo's SHA-256, so that :func:`forget_photo` removes every trace of a photo.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import streamlit as st

from gmx.align import AlignedFace, AlignmentResult, load_image
from gmx.audit import AuditLog
from gmx.config import GmxConfig, load_config
from gmx.device import set_threads
from gmx.errors import ConfigError, GmxError
from gmx.gallery import Calibration
from gmx.passwords import SignInThrottle
from gmx.pipeline import Diagnoser, Diagnosis
from gmx.shared import NotListedError, SharedConfig, load_shared_config
from gmx.similarity import (
    ActivationStore,
    PairExplainer,
    PairMaps,
    QueryActivations,
    load_activations,
    sidecar_path,
)
from gmx.viz import downscale
from ui import state


def server_address() -> str | None:
    """The address Streamlit listens on (``server.address``; ``None``: every interface)."""
    return st.get_option("server.address")


def shared_config() -> SharedConfig:
    """The shared-server settings of ``GMX_CONFIG`` (read on every run, so an administrator's edit
    applies at once); a clear error and ``st.stop()`` when the file cannot be read."""
    try:
        return load_shared_config()
    except ConfigError as exc:  # a bad GMX_CONFIG: say what and where, never a traceback
        st.error(f"The configuration could not be read: {exc}")
        st.stop()
        raise  # unreachable: st.stop() raises


def shared_mode() -> SharedConfig | None:
    """The shared-server settings when shared mode is on (:meth:`SharedConfig.is_on`), else ``None``."""
    shared = shared_config()
    return shared if shared.is_on(server_address()) else None


def active_config() -> GmxConfig:
    """The configuration of this session: settings-panel override, else ``GMX_CONFIG``/env, else demo.

    In shared mode: the session's model set, else the first listed one; a session configuration
    that is not a listed set (the administrator removed it) is replaced by the first set.
    """
    shared = shared_mode()
    cfg = state.get(state.CONFIG)
    if shared is not None:
        if cfg is not None:
            try:
                shared.check_listed(cfg)
            except NotListedError:
                st.info(
                    f"The models of this session are no longer offered; using the set "
                    f"**{shared.default.name}**.",
                    icon=":material/info:",
                )
                cfg = None
        if cfg is None:
            cfg = shared.default.config
            st.session_state[state.CONFIG] = cfg
        return cfg
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


#: Configurations whose loaded models and gallery stay in memory (shared by all sessions).
DIAGNOSERS_KEPT = 2
#: What loading a configuration raises for files a user can fix (wrong kind of file, missing, ...).
LOAD_ERRORS = (GmxError, OSError, ValueError)
#: One load at a time: a second session asking for the same configuration waits and reuses it.
_LOADING = threading.Lock()


@st.cache_resource(show_spinner=False)
def _diagnosers() -> _LruStore:
    """The process-wide store of loaded :class:`Diagnoser` objects, keyed by :func:`config_key`."""
    return _LruStore(max_items=DIAGNOSERS_KEPT)


def load_diagnoser(cfg: GmxConfig) -> Diagnoser:
    """The shared :class:`Diagnoser` of a configuration, loading it first (with a progress box that
    says which file is being read, removed when done) if no session has yet.

    Not a cached function, so the progress can be drawn; the loaded object is kept in
    :func:`_diagnosers`.

    In shared mode only a listed model set is loaded: any other configuration (whatever the
    session state says) is refused before a file is opened.

    Raises:
        GmxError, OSError, ValueError: (:data:`LOAD_ERRORS`) a file cannot be used, or (shared
            mode) the configuration is not a listed set (:class:`gmx.shared.NotListedError`);
            nothing is kept.
    """
    shared = shared_mode()
    if shared is not None:
        shared.check_listed(cfg)  # before anything of cfg is opened
    set_threads(cfg.threads)  # process-wide; a no-op when already set
    key = config_key(cfg)
    found = _diagnosers().get(key)
    if found is not None:
        return found  # type: ignore[return-value]
    with _LOADING:
        found = _diagnosers().get(key)
        if found is not None:
            return found  # type: ignore[return-value]
        box = st.empty()
        try:
            with box.status("Loading models and gallery…", expanded=True) as status:
                loaded = Diagnoser.from_config(cfg, progress=status.write)
        finally:
            box.empty()  # after the status closed (closing redraws it)
        _diagnosers().put(key, loaded)
        return loaded


def diagnoser(cfg: GmxConfig | None = None) -> Diagnoser:
    """The shared :class:`Diagnoser` for a configuration; stops the page with a clear error if it
    cannot be loaded."""
    cfg = cfg or active_config()
    try:
        return load_diagnoser(cfg)
    except LOAD_ERRORS as exc:
        st.error(f"Could not load the models or the gallery: {exc}")
        if cfg.is_demo:
            st.info(
                "The embedded demo files are missing from `models/demo/`: is this a full checkout?"
            )
        elif shared_mode() is not None:
            st.info("Choose another model set on the Home page, or tell the administrator.")
        else:
            st.info("Check the paths in the settings on the Home page (or your `GMX_CONFIG` file).")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_resource(show_spinner=False)
def sign_in_throttle() -> SignInThrottle:
    """The process-wide count of wrong passwords per user name (:class:`gmx.passwords.SignInThrottle`)."""
    return SignInThrottle()


@st.cache_resource(show_spinner=False, max_entries=4)
def _audit_log(path: str) -> AuditLog:
    return AuditLog(path)


def audit_log(path: Path) -> AuditLog:
    """The audit log at ``path``, opened (and created) once per process.

    Raises:
        gmx.audit.AuditError: it cannot be opened or created.
    """
    return _audit_log(str(path))


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


# --- per-photo stores ---------------------------------------------------------------------------
_T = TypeVar("_T")


class _LruStore:
    """Bounded, thread-safe LRU store shared by sessions, keyed by tuples (values are frozen results
    with read-only arrays). The per-photo stores key by tuples whose first element is the photo's
    SHA-256, so that :meth:`forget` can remove everything derived from one photo."""

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

    def forget(self, photo_sha256: str) -> int:
        """Drop every entry of one photo; returns how many were dropped."""
        with self._lock:
            doomed = [k for k in self._items if k and k[0] == photo_sha256]
            for k in doomed:
                del self._items[k]
            return len(doomed)

    def photos(self) -> set[str]:
        """The photo hashes with at least one entry."""
        with self._lock:
            return {str(k[0]) for k in self._items if k}


#: Entries of the per-photo store (alignments, diagnoses, previews, similarity maps) and of the map
#: store (one attribution map per key).
PHOTO_STORE_ITEMS = 96
MAP_STORE_ITEMS = 2000


@st.cache_resource(show_spinner=False)
def photo_store() -> _LruStore:
    """The process-wide store of per-photo results (in memory only)."""
    return _LruStore(max_items=PHOTO_STORE_ITEMS)


@st.cache_resource(show_spinner=False)
def map_store() -> _LruStore:
    """The process-wide store of computed attribution maps (in memory only). Keyed by (photo hash,
    configuration, face, target, variants, method, parameters), so nothing is computed twice and
    nothing is mixed up."""
    return _LruStore(max_items=MAP_STORE_ITEMS)


def _memo(key: tuple, compute: Callable[[], _T]) -> _T:
    store = photo_store()
    hit = store.get(key)
    if hit is None:
        hit = compute()
        store.put(key, hit)
    return hit  # type: ignore[return-value]


def photo_sha256(data: bytes) -> str:
    """The key of a photo in every store."""
    return hashlib.sha256(data).hexdigest()


def forget_photo(photo_sha256: str) -> None:
    """Remove everything derived from a photo (alignment, aligned crops, diagnoses, preview,
    explanation and similarity maps) from the shared stores."""
    photo_store().forget(photo_sha256)
    map_store().forget(photo_sha256)


def align_photo(data: bytes) -> tuple[AlignmentResult, dict[str, float]]:
    """Every face of a photo (aligned once per photo, whatever face or threshold is chosen).

    Raises:
        gmx.errors.ImageLoadError: the photo cannot be decoded.
    """
    return _memo((photo_sha256(data), "align"), lambda: diagnoser().align(data))


def diagnose_photo(
    config_key: tuple[str, ...], data: bytes, face_index: int, min_distance: float | None
) -> Diagnosis:
    """Diagnosis of a photo, kept in memory by (photo, configuration, face, threshold).

    Raises:
        gmx.errors.ImageLoadError: the photo cannot be decoded.
    """
    digest = photo_sha256(data)

    def compute() -> Diagnosis:
        alignment, timings = align_photo(data)
        return diagnoser().diagnose_alignment(
            alignment,
            face_index=face_index,
            min_distance=min_distance,
            image_sha256=digest,
            timings=timings,
        )

    return _memo((digest, "diagnosis", config_key, face_index, min_distance), compute)


def photo_preview(data: bytes, side: int) -> tuple[np.ndarray, float]:
    """The photo downscaled to at most ``side`` pixels, and the factor applied.

    Raises:
        gmx.errors.ImageLoadError: the photo cannot be decoded.
    """
    return _memo((photo_sha256(data), "preview", side), lambda: downscale(load_image(data), side))


@st.cache_data(show_spinner=False, max_entries=64)
def example_bytes(path: str) -> bytes:
    """A demo example photo's bytes (shared, read from the repository)."""
    return Path(path).read_bytes()


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


def similarity_query(
    config_key: tuple[str, ...],
    photo_sha256: str,
    face_index: int,
    _explainer: PairExplainer,
    _face: AlignedFace,
) -> QueryActivations:
    """The query face's feature maps (one forward pass), kept by (photo, configuration, face)."""
    return _memo(
        (photo_sha256, "similarity_query", config_key, face_index),
        lambda: _explainer.query(_face),
    )


def similarity_pairs(
    config_key: tuple[str, ...],
    photo_sha256: str,
    face_index: int,
    image_indices: tuple[int, ...],
    method: str,
    split: str,
    params: tuple[tuple[str, int], ...],
    explainer: PairExplainer,
    face: AlignedFace,
    query: QueryActivations,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[PairMaps, ...]:
    """Paired maps of the query with gallery images, kept by everything that changes them
    (``progress`` is called only when they are computed; not ``st.cache_data``, which would replay
    the progress bar into a block that no longer exists)."""

    def compute() -> tuple[PairMaps, ...]:
        return tuple(
            explainer.explain(
                face,
                list(image_indices),
                method=method,
                query=query,
                split=split,  # type: ignore[arg-type]
                params=dict(params) or None,
                progress=progress,
            )
        )

    key = (photo_sha256, "similarity_pairs", config_key, face_index, image_indices, method, split)
    return _memo((*key, params), compute)


# --- syndromes --------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=8)
def syndrome_results(path: str, mtime: float):
    """Syndrome-level results (:class:`gmx.aggregate.SyndromeResults`) from a file, shared by all
    sessions; ``mtime`` is part of the key so a recomputed file is reloaded."""
    del mtime  # cache key only
    from gmx.aggregate import load_results

    return load_results(path)


@st.cache_data(show_spinner=False, max_entries=256)
def _syndrome_tile(
    path: str,
    mtime: float,
    syndrome: str,
    method: str,
    kind: str,
    palette: str,
    opacity: float,
    region: bool,
):
    from ui import syndromes_view

    return syndromes_view.map_tile(
        syndrome_results(path, mtime), syndrome, method, kind,
        palette=palette, opacity=opacity, region=region,
    )  # fmt: skip


def syndrome_tile(path: str, mtime: float, syndrome: str, method: str, request):
    """One syndrome map drawn as the request asks (:class:`gmx.aggregate.views.MapTile`, or
    ``None`` when the results hold no such map), cached per view."""
    return _syndrome_tile(
        path,
        mtime,
        syndrome,
        method,
        request.kind,
        request.palette,
        request.opacity,
        request.region,
    )


# ---------------------------------------------------------------------------------------------
# Clinician study (pages/7_Study.py, pages/8_Study_analysis.py)

_STUDY_MATERIAL_LOCK = threading.Lock()


def study_source_config(study, study_dir: Path | None, cfg: GmxConfig) -> GmxConfig:
    """The configuration whose models and gallery look at the study's cases
    (:func:`gmx.study.cases.case_source_config`): ``cfg`` for demo cases; for gallery cases the
    model set named in the study file, else its gallery file with ``cfg``'s models. In shared mode
    only a listed set can be loaded (:func:`load_diagnoser` refuses anything else)."""
    from gmx.study.cases import case_source_config

    sets = {s.name: s.config for s in shared_config().sets}
    return case_source_config(study, cfg, model_sets=sets, study_dir=study_dir)


@st.cache_resource(show_spinner=False, max_entries=4)
def _demo_study_cases(data_dir: str, ids: tuple[str, ...]):
    from gmx.study.cases import load_demo_cases

    return load_demo_cases(data_dir, ids)


@st.cache_resource(show_spinner=False, max_entries=4)
def _gallery_study_cases(cfg_key: tuple[str, ...], ids: tuple[str, ...], _gallery,
                         show_photo: bool | None):  # fmt: skip
    from gmx.study.cases import load_gallery_cases

    del cfg_key  # only the cache key
    return load_gallery_cases(_gallery, ids, show_photo=show_photo)


def study_cases(study, cfg: GmxConfig):
    """The faces, labels, patients and true regions of a study's cases
    (:class:`gmx.study.cases.CaseSet`, read-only arrays), shared by all sessions: demo cases from
    the demo data, gallery cases from the gallery of ``cfg`` (:func:`study_source_config`).

    Raises:
        StudyError: an unknown id, or a gallery without photos that may be shown.
    """
    from gmx.config import DEMO_DIR
    from gmx.study.definition import CASE_SOURCE_GALLERY

    if study.case_source == CASE_SOURCE_GALLERY:
        return _gallery_study_cases(config_key(cfg), study.cases, diagnoser(cfg).gallery,
                                    cfg.photos_visible)  # fmt: skip
    return _demo_study_cases(str(DEMO_DIR), study.cases)


def study_material(cfg: GmxConfig, case_id: str, face: np.ndarray, methods: tuple[str, ...],
                   top_k: int, exclude_subject: str | None = None):  # fmt: skip
    """The model's top-k and maps for a study case (:class:`gmx.study.cases.CaseMaterial`), computed
    once per configuration and kept in the shared in-memory store (one computation at a time: the
    explainers hook the shared model). A gallery case's own patient (``exclude_subject``) is left
    out of the gallery."""
    from gmx.study.cases import case_material

    diag = diagnoser(cfg)
    key = ("study", config_key(cfg), case_id, methods, top_k, exclude_subject)
    store = map_store()
    hit = store.get(key)
    if hit is None:
        with _STUDY_MATERIAL_LOCK:
            hit = store.get(key)
            if hit is None:
                hit = case_material(list(diag.models), diag.gallery, face, methods=methods,
                                    top_k=top_k, exclude_subject=exclude_subject)  # fmt: skip
                store.put(key, hit)
    return hit


@st.cache_data(show_spinner=False, max_entries=32)
def study_composite(cfg_key: tuple[str, ...], syndrome: str, _cfg: GmxConfig) -> np.ndarray | None:
    """A syndrome's composite face from the active gallery (``None`` without enough photos);
    ``cfg_key`` is :func:`config_key` of ``_cfg``."""
    from gmx.gallery import composite_face

    del cfg_key  # only the cache key
    gallery = diagnoser(_cfg).gallery
    if syndrome not in gallery.syndromes:
        return None
    return composite_face(gallery, syndrome)


# --- case reports -------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=2)
def _report_calibration(
    config_key: tuple[str, ...], _diagnoser: Diagnoser
) -> tuple[Calibration | None, str]:
    from gmx.report import report_calibration as calibration_of

    del config_key  # part of the cache key only
    return calibration_of(_diagnoser.gallery)


def report_calibration(cfg: GmxConfig, diagnoser: Diagnoser) -> tuple[Calibration | None, str]:
    """The gallery's calibration for case reports and its source in words
    (:func:`gmx.report.report_calibration`: stored in the file, else computed once per
    configuration: 0.2 s on the demo, longer on a large gallery)."""
    return _report_calibration(config_key(cfg), diagnoser)


# --- scorecard --------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def scorecard(path: str, mtime: float):
    """A scorecard file (:class:`gmx.metrics.scorecard.Scorecard`), shared by all sessions;
    ``mtime`` is part of the key so a rewritten file is reloaded."""
    del mtime  # cache key only
    from gmx.metrics.scorecard import load_scorecard

    return load_scorecard(path)


# --- per-photo checks (issue 11: the scorecard's cheap metrics on demand) -----------------------
def photo_checks(key: tuple, compute: Callable[[], _T]) -> _T:
    """The Explain page's per-photo checks (:func:`gmx.metrics.photo.photo_checks`) or the
    Similarity page's pair checks (:func:`gmx.metrics.pairs.pair_faithfulness`), kept in the photo
    store under ``key`` (which starts with the photo's hash, so :func:`forget_photo` drops them)."""
    return _memo(key, compute)


# --- region profiles of the demo (issue 11, RQ3) ------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def region_profiles(path: str, mtime: float):
    """A region-profiles file (:func:`gmx.regions.load_region_profiles`), shared by all sessions;
    ``mtime`` is part of the key so a rewritten file is reloaded."""
    del mtime  # cache key only
    from gmx.regions import load_region_profiles

    return load_region_profiles(path)
