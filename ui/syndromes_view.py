"""Helpers of the Syndromes page: where results live, computing missing ones, overlays, tables."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gmx.aggregate import (
    DEFAULT_METHODS,
    SyndromeResults,
    load_batch,
    run_batch,
    save_results,
    summarize,
    to_template,
)
from gmx.aggregate.localisation import NullComparison
from gmx.config import DEMO_DIR, GmxConfig
from gmx.explain import get_method
from gmx.gallery import MIN_COMPOSITE_SUBJECTS, template_face
from gmx.viz import PALETTES, Scale, overlay

#: The committed demo results (``gmx batch summarize`` on the demo, see docs/aggregate.md).
DEMO_RESULTS = DEMO_DIR / "syndromes.npz"

KINDS = {
    "mean": "Mean map",
    "std": "Spread (standard deviation)",
    "contrast": "Contrast vs unaffected (mean minus cohort mean)",
}


def cache_root() -> Path:
    """Folder for computed results: ``$GMX_CACHE_DIR`` or ``~/.cache/gmx``, plus ``syndromes``."""
    base = os.environ.get("GMX_CACHE_DIR") or str(Path.home() / ".cache" / "gmx")
    return Path(base) / "syndromes"


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


def _display(results: SyndromeResults, syndrome: str, method: str, kind: str) -> np.ndarray | None:
    sm = results.maps.get((syndrome, method))
    if sm is None:
        return None
    if kind == "mean":
        raw = sm.mean
    elif kind == "std":
        raw = sm.std
    elif kind == "contrast":
        raw = results.contrast(syndrome, method)
        if raw is None:
            return None
    else:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return to_template(raw)


def overlay_image(
    results: SyndromeResults, syndrome: str, method: str, kind: str, palette: str, opacity: float
) -> np.ndarray | None:
    """The map of ``kind`` over the syndrome's :func:`background`, or ``None`` if it does not exist.

    Each map gets its own robust scale: signed for contrasts and signed methods' means.
    """
    values = _display(results, syndrome, method, kind)
    if values is None:
        return None
    signed = kind == "contrast" or bool(np.nanmin(values) < 0)
    scale = Scale.for_maps([values], signed=signed)
    return overlay(
        background(results, syndrome),
        values,
        scale,
        cmap=PALETTES[palette].cmap(signed),
        opacity=opacity,
    )


def background(results: SyndromeResults, syndrome: str) -> np.ndarray:
    """What syndrome maps are drawn on: the composite face where the gallery-picture policy allows
    one (:func:`gmx.gallery.composite_face`: at least ``MIN_COMPOSITE_SUBJECTS`` patients), else the
    neutral template face (no patient data)."""
    face = results.composites.get(syndrome)
    return template_face() if face is None else face


def composite_caption(results: SyndromeResults, syndrome: str) -> str | None:
    """Why there is no composite face (``None`` when there is one)."""
    if syndrome in results.composites:
        return None
    return (
        f"No composite face: it needs photos of at least {MIN_COMPOSITE_SUBJECTS} patients, so "
        "that no single patient shows through. Maps are drawn on a template face."
    )


def composite_difference_image(results: SyndromeResults, syndrome: str) -> np.ndarray | None:
    """Composite minus the unaffected composite, shown as ``128 + diff`` grey-centred RGB."""
    diff = results.composite_difference(syndrome)
    if diff is None:
        return None
    return np.clip(np.rint(128 + 2 * diff), 0, 255).astype(np.uint8)


def summary_rows(results: SyndromeResults, syndrome: str) -> list[dict[str, Any]]:
    """Per method: images, patients, split-half stability (gallery maps)."""
    rows = []
    for r in results.table():
        if r["syndrome"] != syndrome:
            continue
        rows.append(
            {
                "method": get_method(r["method"]).display_name,
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
            "method": get_method(sc.method).display_name,
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


def hpo_features(syndrome_id: str, gallery_hpo: Sequence[str]) -> list[str]:
    """Facial features of a syndrome: the synthetic table's named features for demo ids, else the
    gallery's HPO terms."""
    from gmx.synth import SYNDROMES

    for s in SYNDROMES:
        if s.syndrome_id == syndrome_id:
            return [f"{h} ({f.replace('_', ' ')})" for h, f in zip(s.hpo, s.features, strict=False)]
    return list(gallery_hpo)


__all__ = [
    "DEMO_RESULTS",
    "KINDS",
    "background",
    "cache_root",
    "composite_caption",
    "composite_difference_image",
    "compute_results",
    "hpo_features",
    "localisation_rows",
    "overlay_image",
    "results_path",
    "summary_rows",
]
