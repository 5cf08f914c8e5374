"""The cases of a study: faces, true labels and regions (demo), model suggestions and maps.

On the embedded demo the cases are held-out test images (``split == "test"`` in
``models/demo/synth_metadata.csv``): none of them is in the demo gallery or was trained on. Their
aligned 112x112 faces come from the committed demo data; the true syndrome and the true causal
region (the synthetic features' mask) are known, so the analysis can say how well raters find them.

Only image ids ever leave this module for the study database.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmx.study.definition import DEMO_TEST_SPLIT, StudyError

DEMO_METADATA = "synth_metadata.csv"


def _demo_rows(data_dir: str | Path) -> list[dict[str, str]]:
    p = Path(data_dir) / DEMO_METADATA
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise StudyError(f"cannot read the demo metadata {p}: {exc.strerror or exc}") from exc


def demo_case_ids(data_dir: str | Path, split: str = DEMO_TEST_SPLIT) -> list[str]:
    """Image ids of one split of the demo data (default: the held-out frequent test split)."""
    return [r["image_id"] for r in _demo_rows(data_dir) if r["split"] == split]


def demo_truth(data_dir: str | Path) -> dict[str, str]:
    """Image id -> true syndrome id, for every demo image."""
    return {r["image_id"]: r["label"] for r in _demo_rows(data_dir)}


@dataclass(frozen=True, eq=False)
class CaseSet:
    """The faces and ground truth of a study's cases.

    Attributes:
        faces: image id -> ``(112, 112, 3)`` uint8 RGB aligned face (read-only).
        labels: image id -> true syndrome id.
        masks: image id -> ``(112, 112)`` bool true causal region (empty when unknown/unaffected).
        syndrome_names: syndrome id -> display name (every syndrome a rater may guess).
    """

    faces: Mapping[str, np.ndarray]
    labels: Mapping[str, str]
    masks: Mapping[str, np.ndarray]
    syndrome_names: Mapping[str, str]


def load_demo_cases(data_dir: str | Path, ids: Sequence[str]) -> CaseSet:
    """The demo faces, labels and regions of ``ids``.

    Raises:
        StudyError: an id that the demo data does not have.
    """
    from gmx.synth import load_demo_data

    data = load_demo_data(data_dir)
    index = {str(i): n for n, i in enumerate(data.image_ids)}
    missing = [i for i in ids if i not in index]
    if missing:
        raise StudyError(f"case ids not in the demo data: {missing[:10]}")
    faces, masks = {}, {}
    for i in ids:
        face = data.images[index[i]].copy()
        face.setflags(write=False)
        mask = data.masks[index[i]].copy()
        mask.setflags(write=False)
        faces[i], masks[i] = face, mask
    names = {s.syndrome_id: s.name for s in data.syndromes}
    return CaseSet(faces, {i: str(data.labels[index[i]]) for i in ids}, masks, names)


@dataclass(frozen=True)
class Suggestion:
    """One model suggestion shown to the rater."""

    rank: int
    syndrome_id: str
    name: str
    distance: float


@dataclass(frozen=True, eq=False)
class CaseMaterial:
    """What the model says about one case.

    Attributes:
        suggestions: the top-k syndromes.
        explained: the syndrome the maps explain (the top suggestion).
        maps: method -> ``(112, 112)`` float32 template map (similarity to the top suggestion's
            nearest gallery image), read-only.
    """

    suggestions: tuple[Suggestion, ...]
    explained: str
    maps: Mapping[str, np.ndarray]


def case_material(
    models: Any, gallery: Any, face: np.ndarray, *, methods: Sequence[str], top_k: int
) -> CaseMaterial:
    """Rank the gallery for one aligned face and explain the top suggestion with ``methods``.

    Args:
        models: the gallery's loaded model(s).
        gallery: the gallery.
        face: ``(112, 112, 3)`` uint8 aligned face; not modified.
        methods: registry names (empty: no maps).
        top_k: suggestions kept.
    """
    from gmx.aggregate.localisation import explain_against
    from gmx.aggregate.run import gallery_ensemble
    from gmx.gallery import rank

    faces = np.asarray(face, np.uint8)[None]
    emb = gallery_ensemble(models, gallery).embed(faces)
    ranking = rank(emb[0], gallery, top_k=top_k)
    sugg = tuple(
        Suggestion(m.rank, m.syndrome_id, m.name, float(m.distance)) for m in ranking.syndromes
    )
    top = sugg[0].syndrome_id
    maps: dict[str, np.ndarray] = {}
    if methods:
        got = explain_against(models, gallery, faces, emb, top, methods=list(methods))
        for m, arr in got.items():
            placed = np.asarray(arr[0], np.float32)
            if placed.shape != face.shape[:2]:
                from gmx.aggregate.localisation import template_maps

                placed = template_maps(arr)[0]
            placed = np.nan_to_num(placed).astype(np.float32)
            placed.setflags(write=False)
            maps[m] = placed
    return CaseMaterial(sugg, top, maps)


def answered_region_cases(answers: Sequence[Any]) -> list[str]:
    """Case ids with at least one ``regions`` answer (those whose maps the analysis needs)."""
    from gmx.study.assign import REGIONS

    return sorted({a.case_id for a in answers if a.item == REGIONS})


def demo_analysis_inputs(
    study: Any, answers: Sequence[Any], data_dir: str | Path, *, with_maps: bool = True
) -> tuple[dict[str, str], dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """Truth labels, true regions and (optionally) maps of the demo cases, for :func:`analyse`.

    Maps are computed with the demo model and gallery for the cases that have region marks.
    """
    from gmx.config import DEMO_GALLERY, DEMO_MODEL

    cases = load_demo_cases(data_dir, study.cases)
    maps: dict[tuple[str, str], np.ndarray] = {}
    if with_maps and study.methods:
        from gmx.encode import load_model
        from gmx.gallery import load_gallery

        model = load_model(DEMO_MODEL)
        gallery = load_gallery(DEMO_GALLERY)
        for c in answered_region_cases(answers):
            if c in cases.faces:
                mat = case_material(model, gallery, cases.faces[c], methods=study.methods, top_k=1)
                maps.update({(c, m): v for m, v in mat.maps.items()})
    return dict(cases.labels), dict(cases.masks), maps


__all__ = [
    "CaseMaterial",
    "CaseSet",
    "Suggestion",
    "answered_region_cases",
    "case_material",
    "demo_analysis_inputs",
    "demo_case_ids",
    "demo_truth",
    "load_demo_cases",
]
