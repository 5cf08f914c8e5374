"""Helpers of the Syndromes page: its controls (frozen requests), where results live, computing
missing ones, tiles and tables. What is drawn is computed in :mod:`gmx.aggregate.views`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from gmx._io import NO_CACHE_ENV, user_cache_dir
from gmx.aggregate import (
    DEFAULT_METHODS,
    TARGET_MODES,
    SyndromeResults,
    load_batch,
    run_batch,
    save_results,
    summarize,
    views,
)
from gmx.aggregate.localisation import NullComparison
from gmx.aggregate.views import MapTile, background, composite_difference_image
from gmx.config import DEMO_DIR, GmxConfig
from gmx.explain import get_method, list_methods
from gmx.gallery import MIN_COMPOSITE_SUBJECTS, Gallery
from gmx.viz import DEFAULT_PALETTE, PALETTES
from ui import colours, state, tables

#: The committed demo results (``gmx batch summarize`` on the demo, see docs/aggregate.md).
DEMO_RESULTS = DEMO_DIR / "syndromes.npz"

KINDS = {
    "mean": "Mean map",
    "std": "Spread (standard deviation)",
    "contrast": "Contrast vs unaffected (mean minus cohort mean)",
}
#: What a tile's values are, for its legend.
KIND_LEGENDS = {
    "mean": "mean attribution",
    "std": "spread between patients",
    "contrast": "more (+) or less (−) than the unaffected cohort",
}
TARGET_LABELS = {
    "similarity": "Similarity to the nearest other patient of the syndrome",
    "logit": "Classifier logit",
    "auto": "Logit where the classifier has the class, else similarity",
}
REGION_LEGEND = "Cyan outline: the known causal region (synthetic demo)"
NO_REGION = "No known causal region for this syndrome (only the synthetic demo knows them)."
DEFAULT_OPACITY = 0.6


def method_name(method: str) -> str:
    """A method's display name (``Grad-CAM (signed)``, never ``gradcam_signed``)."""
    return get_method(method).display_name


@dataclass(frozen=True)
class SyndromesRequest:
    """What the Syndromes page's sidebar asks for.

    Attributes:
        target: what the gallery maps explain (:data:`gmx.aggregate.TARGET_MODES`).
        methods: attribution methods, in the chosen order.
        kind: ``mean``, ``std`` or ``contrast`` (:data:`KINDS`).
        palette: the app's colour-map choice, a label of :data:`gmx.viz.PALETTES`.
        opacity: overlay opacity in ``[0, 1]``.
        region: outline the known causal region where there is one.
    """

    target: str = "similarity"
    methods: tuple[str, ...] = DEFAULT_METHODS
    kind: str = "mean"
    palette: str = DEFAULT_PALETTE
    opacity: float = DEFAULT_OPACITY
    region: bool = True

    def __post_init__(self) -> None:
        if self.target not in TARGET_MODES:
            raise ValueError(f"target must be one of {TARGET_MODES}, got {self.target!r}")
        if self.palette not in PALETTES:
            raise ValueError(f"palette must be one of {list(PALETTES)}, got {self.palette!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")


@dataclass(frozen=True)
class SyndromeChoice:
    """The syndrome shown and, when comparing, the second one."""

    first: str
    second: str | None = None

    @property
    def shown(self) -> tuple[str, ...]:
        """The syndromes to draw, side by side."""
        return (self.first,) if self.second is None else (self.first, self.second)


def syndromes_controls() -> SyndromesRequest:
    """The sidebar of the Syndromes page (every setting kept across pages)."""
    with st.sidebar:
        st.header("Results")
        target = st.radio(
            "Target", TARGET_MODES, format_func=TARGET_LABELS.__getitem__,
            key=state.keep("syndromes.target", "similarity"),
        )  # fmt: skip
        methods = st.multiselect(
            "Methods", list(list_methods()), format_func=method_name,
            key=state.keep("syndromes.methods", list(DEFAULT_METHODS)),
        )  # fmt: skip
        st.header("Display")
        kind = st.radio(
            "Map", list(KINDS), format_func=KINDS.__getitem__,
            key=state.keep("syndromes.kind", "mean"),
        )  # fmt: skip
        colours.palette_control()
        palette = st.session_state[colours.PALETTE]
        opacity = st.slider(
            "Opacity", 0.0, 1.0, key=state.keep("syndromes.opacity", DEFAULT_OPACITY)
        )
        region = st.toggle(
            "Outline the known causal region", key=state.keep("syndromes.region", True),
            help="Only the synthetic demo knows where its syndromes change the face.",
        )  # fmt: skip
    return SyndromesRequest(target, tuple(methods), kind, palette, float(opacity), bool(region))


def syndrome_choice(ids: Sequence[str], names: Mapping[str, str]) -> SyndromeChoice:
    """The syndrome select boxes (full width, so that long names are never cut), kept across
    pages."""

    def label(s: str) -> str:
        return f"{s} · {names[s]}"

    first = st.selectbox(
        "Syndrome", ids, format_func=label, key=state.keep_choice("syndromes.syndrome", ids)
    )
    compare = st.toggle(
        "Compare with a second syndrome", key=state.keep("syndromes.compare", False)
    )
    second = None
    if compare:
        others = [s for s in ids if s != first] or list(ids)
        second = st.selectbox(
            "Second syndrome",
            others,
            format_func=label,
            key=state.keep_choice("syndromes.second", others),
        )
    return SyndromeChoice(first, second)


def syndrome_facts(gallery: Gallery, syndrome: str) -> str:
    """HPO features (with labels), OMIM and genes of a syndrome, each saying why when empty."""
    entry = gallery.syndromes.get(syndrome)
    if entry is None:
        return f"**Facial features (HPO):** {tables.NOT_IN_METADATA}"
    return (
        f"**Facial features (HPO):** {tables.hpo_text(entry)}  \n"
        f"**OMIM:** {tables.omim_text(entry)} · **Genes:** {tables.genes_text(entry)}"
    )


def cache_root() -> Path:
    """Folder for computed syndrome results: gmx's cache folder (:func:`gmx._io.user_cache_dir`)
    plus ``syndromes``. Results the user asked for are kept even where ``GMX_NO_CACHE`` turns the
    automatic caches off."""
    base = user_cache_dir({**os.environ, NO_CACHE_ENV: ""})
    if base is None:  # only when NO_CACHE_ENV is set, which the line above clears
        raise RuntimeError("no cache folder")
    return base / "syndromes"


def results_path(cfg: GmxConfig, fingerprint: str, target: str, methods: Sequence[str]) -> Path:
    """The results file of a configuration: the committed demo file for the demo defaults, else a
    cache file keyed by model fingerprint, gallery, target and methods."""
    if cfg.is_demo and target == "similarity" and tuple(methods) == DEFAULT_METHODS:
        return DEMO_RESULTS
    key = "|".join([fingerprint, str(cfg.gallery_path), target, *methods])
    return cache_root() / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def compute_results(
    models: Sequence[Any],
    gallery: Any,
    path: Path,
    *,
    methods: Sequence[str],
    target: str,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run (or resume) the batch maps next to ``path`` and write the summary to ``path``."""
    run_dir = path.with_suffix(".run")
    run_batch(models, gallery, run_dir, methods=methods, target=target, progress=progress)  # type: ignore[arg-type]
    batch = load_batch(run_dir, gallery)
    results = summarize(batch, gallery, masks=gallery.extras.get("gt_mask"))
    return save_results(results, path)


def overlay_image(
    results: SyndromeResults, syndrome: str, method: str, kind: str, palette: str, opacity: float
) -> np.ndarray | None:
    """The map of ``kind`` over the syndrome's :func:`background` (region outlined where known), or
    ``None`` if it does not exist. Each map gets its own robust scale; ``palette`` is a label of
    :data:`gmx.viz.PALETTES`."""
    tile = map_tile(results, syndrome, method, kind, palette=palette, opacity=opacity)
    return None if tile is None else tile.image


def map_tile(
    results: SyndromeResults,
    syndrome: str,
    method: str,
    kind: str,
    *,
    palette: str = DEFAULT_PALETTE,
    opacity: float,
    region: bool = True,
) -> MapTile | None:
    """:func:`gmx.aggregate.views.map_tile` in the app's colour maps (``palette``: a label of
    :data:`gmx.viz.PALETTES`)."""
    chosen = PALETTES[palette]
    return views.map_tile(
        results, syndrome, method, kind,
        signed_cmap=chosen.signed, unsigned_cmap=chosen.unsigned, opacity=opacity, region=region,
    )  # fmt: skip


def tile_legend(tile: MapTile) -> str:
    """The legend under one tile: its colour map and the range of its own scale."""
    lo, hi = tile.scale.vmin, tile.scale.vmax
    if tile.signed:
        return f"{tile.cmap}: {lo:+.2g} · 0 · {hi:+.2g}"
    return f"{tile.cmap}: {lo:.2g} → {hi:.2g}"


def row_legend(kind: str, region: bool) -> str:
    """What every tile of a row shows (once under the row)."""
    text = f"Values: {KIND_LEGENDS[kind]}; each map has its own scale (legend under it)."
    return text + (f" {REGION_LEGEND}." if region else "")


def composite_caption(results: SyndromeResults, syndrome: str) -> str | None:
    """Why there is no composite face (``None`` when there is one)."""
    if syndrome in results.composites:
        return None
    return (
        f"No composite face: it needs photos of at least {MIN_COMPOSITE_SUBJECTS} patients, so "
        "that no single patient shows through. Maps are drawn on a template face."
    )


def summary_rows(results: SyndromeResults, syndrome: str) -> list[dict[str, Any]]:
    """Per method: images, patients, split-half stability (gallery maps)."""
    rows = []
    for r in results.table():
        if r["syndrome"] != syndrome:
            continue
        rows.append(
            {
                "method": method_name(r["method"]),
                "images": r["images"],
                "patients": r["patients"],
                "split-half r": None
                if not np.isfinite(r["stability"])
                else round(r["stability"], 3),
            }
        )
    return rows


def _interval(c: NullComparison) -> str:
    if not np.isfinite(c.difference):
        return "n/a"
    if not np.isfinite(c.ci_low):
        return f"{c.difference:+.3f}"
    return f"{c.difference:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"


#: Short names of the nulls (the expander on the page says what each one is).
_NULL_SHORT = {
    "other_maps": "other syndromes' maps",
    "unaffected": "unaffected",
    "grand_mean": "generic prior",
    "other_masks": "other regions",
}


def localisation_rows(
    results: SyndromeResults, syndrome: str, metric: str = "auroc"
) -> list[dict[str, Any]]:
    """Per method: a verdict that says only what survives the nulls, the held-out AUROC vs the
    region, and its difference to every null with its interval. Empty without a study."""
    loc = results.localisation
    if loc is None:
        return []
    rows = []
    for sc in loc.scores:
        if sc.syndrome != syndrome or sc.metric != metric:
            continue
        failed = [_NULL_SHORT[c.null] for c in sc.nulls if not c.above]
        row: dict[str, Any] = {
            "method": method_name(sc.method),
            "finds its region?": "yes, beyond all nulls"
            if not failed
            else "not beyond " + ", ".join(failed),
            "AUROC": round(sc.own, 3) if np.isfinite(sc.own) else None,
            "held-out images": sc.n_images,
        }
        for c in sc.nulls:
            row[f"vs {_NULL_SHORT[c.null]}"] = _interval(c)
        rows.append(row)
    return rows


__all__ = [
    "DEMO_RESULTS",
    "KINDS",
    "KIND_LEGENDS",
    "NO_REGION",
    "REGION_LEGEND",
    "TARGET_LABELS",
    "SyndromeChoice",
    "SyndromesRequest",
    "background",
    "cache_root",
    "composite_caption",
    "composite_difference_image",
    "compute_results",
    "localisation_rows",
    "map_tile",
    "method_name",
    "overlay_image",
    "results_path",
    "row_legend",
    "summary_rows",
    "syndrome_choice",
    "syndrome_facts",
    "syndromes_controls",
    "tile_legend",
]
