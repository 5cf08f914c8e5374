"""Syndrome-level results of a batch run, in one small file the app loads instantly.

:func:`summarize` turns per-image maps (:class:`~gmx.aggregate.run.BatchMaps`) into
:class:`SyndromeResults`: per syndrome and method the mean and spread maps, counts and stability; per
syndrome the composite face; optionally contrasts against a reference cohort (the unaffected) and
the localisation of known causal regions on held-out images, against nulls
(:mod:`gmx.aggregate.localisation`). :func:`save_results` / :func:`load_results` store them as a
compressed npz (maps as float16 at native resolution) plus JSON metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmx.aggregate.localisation import Localisation, explain_against, from_json, to_json
from gmx.aggregate.run import BatchMaps
from gmx.aggregate.stats import SyndromeMap, syndrome_map
from gmx.aggregate.store import atomic_save_npz
from gmx.aggregate.targets import TargetMode
from gmx.errors import GmxError
from gmx.gallery import MIN_COMPOSITE_SUBJECTS, Gallery, composite_face, mean_face

RESULTS_VERSION = 2


class ResultsError(GmxError):
    """A syndrome results file is missing, damaged or of another version."""


@dataclass(frozen=True, eq=False)
class SyndromeResults:
    """Syndrome-level maps and composites of one model, gallery, target mode and method set.

    Attributes:
        syndromes: syndrome ids, gallery order of first appearance.
        names: syndrome id -> display name.
        methods: registry names.
        maps: ``(syndrome, method)`` -> :class:`SyndromeMap`.
        composites: syndrome -> ``(112, 112, 3)`` uint8 mean aligned face, only for syndromes whose
            maps come from at least :data:`~gmx.gallery.MIN_COMPOSITE_SUBJECTS` patients (the
            gallery-picture policy; enforced here too, so results files written by older versions
            cannot show a composite of too few patients).
        reference_composite: the reference cohort's composite, or ``None``.
        reference_maps: ``(syndrome, method)`` -> ``(h, w)`` mean map of the reference cohort
            explained against that syndrome's target (same target mode); the contrast is
            ``maps[...].mean - reference_maps[...]``.
        masks: syndrome -> ``(112, 112)`` bool known causal region (majority of its images'
            masks), if known.
        localisation: how well each syndrome's mean map over *held-out* images finds its region,
            against nulls (:class:`~gmx.aggregate.localisation.Localisation`), if computed. The
            gallery images' maps are never scored against the region: most are training images.
        info: metadata (target mode, model fingerprint, gallery, reference cohort size, ...).
    """

    syndromes: tuple[str, ...]
    names: Mapping[str, str]
    methods: tuple[str, ...]
    maps: Mapping[tuple[str, str], SyndromeMap]
    composites: Mapping[str, np.ndarray]
    reference_composite: np.ndarray | None = None
    reference_maps: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    localisation: Localisation | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        patients: dict[str, int] = {}
        for (s, _), sm in self.maps.items():
            patients[s] = max(patients.get(s, 0), sm.n_patients)
        allowed = {
            s: face
            for s, face in self.composites.items()
            if patients.get(s, 0) >= MIN_COMPOSITE_SUBJECTS
        }
        object.__setattr__(self, "composites", allowed)

    def contrast(self, syndrome: str, method: str) -> np.ndarray | None:
        """``(h, w)`` syndrome mean map minus the reference cohort's, or ``None`` without one."""
        ref = self.reference_maps.get((syndrome, method))
        if ref is None:
            return None
        return (self.maps[(syndrome, method)].mean - ref).astype(np.float32)

    def composite_difference(self, syndrome: str) -> np.ndarray | None:
        """``(112, 112, 3)`` float32 composite minus the reference composite (``[-255, 255]``), or
        ``None`` without either."""
        if self.reference_composite is None or syndrome not in self.composites:
            return None
        return self.composites[syndrome].astype(np.float32) - self.reference_composite.astype(
            np.float32
        )

    def table(self) -> list[dict[str, Any]]:
        """One row per syndrome and method: counts and stability (for display/docs).

        The localisation table is :meth:`Localisation.rows` of :attr:`localisation`.
        """
        rows = []
        for s in self.syndromes:
            for m in self.methods:
                sm = self.maps.get((s, m))
                if sm is None:
                    continue
                row: dict[str, Any] = {
                    "syndrome": s,
                    "method": m,
                    "images": sm.n_images,
                    "patients": sm.n_patients,
                    "stability": sm.stability,
                }
                rows.append(row)
        return rows


def syndrome_masks(labels: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per syndrome, the pixels inside the masks of at least half of its images (empty: dropped)."""
    out = {}
    for s in np.unique(labels):
        m = np.asarray(masks[labels == s], np.float32).mean(0) >= 0.5
        if m.any():
            out[str(s)] = m
    return out


def cohort_maps(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    embeddings: np.ndarray,
    syndromes: Sequence[str],
    *,
    methods: Sequence[str],
    target: TargetMode = "similarity",
    variants: Sequence[int] | None = None,
    batch_size: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Mean raw map of a reference cohort explained against each syndrome's target.

    Args:
        models: the gallery's model(s).
        gallery: the gallery (for nearest-image targets).
        faces: ``(n, 112, 112, 3)`` uint8 cohort faces (e.g. the unaffected).
        embeddings: ``(n, V, D)`` their embeddings with the gallery's variants.
        syndromes: syndromes to explain against.
        methods, target, variants, batch_size: as :func:`~gmx.aggregate.run.run_batch`.
        progress: ``progress(done_syndromes, total)``.

    Returns:
        ``(syndrome, method)`` -> ``(h, w)`` float32 mean map (NaN rows ignored).
    """
    out = {}
    for i, s in enumerate(syndromes):
        maps = explain_against(
            models,
            gallery,
            faces,
            embeddings,
            s,
            methods=methods,
            target=target,
            variants=variants,
            batch_size=batch_size,
        )
        for m, arr in maps.items():
            if np.isfinite(arr).reshape(len(arr), -1).all(axis=1).any():
                out[(s, m)] = np.nanmean(arr, axis=0).astype(np.float32)
        if progress is not None:
            progress(i + 1, len(syndromes))
    return out


def _reference_composite(faces: np.ndarray | None) -> np.ndarray | None:
    """The reference cohort's composite; its faces carry no patient ids, so each counts as one
    patient (:data:`~gmx.gallery.MIN_COMPOSITE_SUBJECTS` faces at least)."""
    if faces is None or len(faces) == 0:
        return None
    return mean_face(faces, [str(i) for i in range(len(faces))])


def summarize(
    batch: BatchMaps,
    gallery: Gallery,
    *,
    masks: np.ndarray | None = None,
    reference_faces: np.ndarray | None = None,
    reference_maps: Mapping[tuple[str, str], np.ndarray] | None = None,
    localisation: Localisation | None = None,
    repeats: int = 20,
    seed: int = 0,
) -> SyndromeResults:
    """Syndrome-level results from per-image maps.

    Args:
        batch: a (complete or partial) batch run; unfinished and target-less rows are ignored.
        gallery: the gallery it ran on (names, photos for composites).
        masks: ``(N_gallery, 112, 112)`` bool known causal regions (demo: ``extras["gt_mask"]``),
            kept per syndrome for display (the majority region).
        reference_faces: ``(n, 112, 112, 3)`` uint8 reference cohort for the composite contrast.
        reference_maps: from :func:`cohort_maps`.
        localisation: held-out localisation against nulls
            (:func:`gmx.aggregate.localisation.localisation`), stored as given.
        repeats, seed: of the split-half stability.

    Raises:
        ValueError: if no syndrome has a finished map.
    """
    methods = tuple(batch.manifest.get("methods", tuple(batch.maps)))
    order: list[str] = []
    for s in batch.syndromes:
        if s not in order:
            order.append(str(s))
    maps: dict[tuple[str, str], SyndromeMap] = {}
    composites = {}
    for s in order:
        rows = np.flatnonzero((batch.syndromes == s) & batch.finished)
        if rows.size == 0:
            continue
        for m in methods:
            arr = batch.maps[m][rows]
            if not np.isfinite(arr).reshape(len(arr), -1).all(axis=1).any():
                continue
            maps[(s, m)] = syndrome_map(arr, batch.subjects[rows], s, m, repeats=repeats, seed=seed)
        face = composite_face(gallery, s, indices=batch.indices[rows])
        if face is not None:
            composites[s] = face
    kept = tuple(s for s in order if any((s, m) in maps for m in methods))
    if not kept:
        raise ValueError("no syndrome has finished maps yet")
    smasks: dict[str, np.ndarray] = {}
    if masks is not None:
        labels = batch.syndromes
        smasks = {
            s: v
            for s, v in syndrome_masks(labels, np.asarray(masks)[batch.indices]).items()
            if s in kept
        }
    info = {
        "target": batch.manifest.get("target"),
        "variants": batch.manifest.get("variants"),
        "model_fingerprint": batch.manifest.get("model_fingerprint"),
        "gallery": batch.manifest.get("gallery"),
        "gallery_version": batch.manifest.get("gallery_version"),
        "n_reference": 0 if reference_faces is None else len(reference_faces),
        "stability_repeats": repeats,
    }
    return SyndromeResults(
        syndromes=kept,
        names={s: gallery.syndromes[s].name if s in gallery.syndromes else s for s in kept},
        methods=methods,
        maps=maps,
        composites=composites,
        reference_composite=_reference_composite(reference_faces),
        reference_maps=dict(reference_maps or {}),
        masks=smasks,
        localisation=localisation,
        info=info,
    )


def save_results(results: SyndromeResults, path: str | Path) -> Path:
    """Write ``results`` to ``path`` (npz, atomic). Maps are stored as float16."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {
        "version": RESULTS_VERSION,
        "syndromes": list(results.syndromes),
        "names": dict(results.names),
        "methods": list(results.methods),
        "info": dict(results.info),
        "maps": [],
        "localisation": None if results.localisation is None else to_json(results.localisation),
    }
    for i, ((s, m), sm) in enumerate(results.maps.items()):
        arrays[f"mean_{i}"] = sm.mean.astype(np.float16)
        arrays[f"std_{i}"] = sm.std.astype(np.float16)
        ref = results.reference_maps.get((s, m))
        if ref is not None:
            arrays[f"ref_{i}"] = np.asarray(ref).astype(np.float16)
        meta["maps"].append(
            {
                "syndrome": s,
                "method": m,
                "n_images": sm.n_images,
                "n_patients": sm.n_patients,
                "stability": sm.stability,
                "stability_sb": sm.stability_sb,
            }
        )
    for j, s in enumerate(results.syndromes):
        if s in results.composites:
            arrays[f"face_{j}"] = results.composites[s]
        if s in results.masks:
            arrays[f"mask_{j}"] = np.packbits(results.masks[s])
    if results.reference_composite is not None:
        arrays["reference_face"] = results.reference_composite
    arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(path, arrays)
    return path


def load_results(path: str | Path) -> SyndromeResults:
    """Read a file written by :func:`save_results`.

    Raises:
        ResultsError: if the file is missing, damaged or of another version.
    """
    path = Path(path)
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(bytes(data["meta"]).decode())
    except (OSError, KeyError, ValueError) as exc:
        raise ResultsError(f"cannot read syndrome results {path}: {exc}") from exc
    if meta.get("version") != RESULTS_VERSION:
        raise ResultsError(
            f"{path} has results version {meta.get('version')}, need {RESULTS_VERSION}"
        )
    maps, refs = {}, {}
    for i, e in enumerate(meta["maps"]):
        key = (e["syndrome"], e["method"])
        maps[key] = SyndromeMap(
            e["syndrome"],
            e["method"],
            data[f"mean_{i}"].astype(np.float32),
            data[f"std_{i}"].astype(np.float32),
            int(e["n_images"]),
            int(e["n_patients"]),
            float(e["stability"]),
            float(e["stability_sb"]),
        )
        if f"ref_{i}" in data:
            refs[key] = data[f"ref_{i}"].astype(np.float32)
    syndromes = tuple(meta["syndromes"])
    composites, masks = {}, {}
    for j, s in enumerate(syndromes):
        if f"face_{j}" in data:
            composites[s] = data[f"face_{j}"]
        if f"mask_{j}" in data:
            masks[s] = np.unpackbits(data[f"mask_{j}"])[: 112 * 112].reshape(112, 112).astype(bool)
    try:
        loc = None if meta.get("localisation") is None else from_json(meta["localisation"])
    except ValueError as exc:
        raise ResultsError(f"{path}: {exc}") from exc
    return SyndromeResults(
        syndromes=syndromes,
        names=meta["names"],
        methods=tuple(meta["methods"]),
        maps=maps,
        composites=composites,
        reference_composite=data.get("reference_face"),
        reference_maps=refs,
        masks=masks,
        localisation=loc,
        info=meta["info"],
    )


__all__ = [
    "RESULTS_VERSION",
    "ResultsError",
    "SyndromeResults",
    "cohort_maps",
    "load_results",
    "save_results",
    "summarize",
    "syndrome_masks",
]
