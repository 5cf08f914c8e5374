"""The cases of a study: faces, true labels and regions, model suggestions and maps.

Two case sources (``[cases] source`` of the study file):

* ``"demo"``: held-out test images of the embedded demo (``split == "test"`` in
  ``models/demo/synth_metadata.csv``): none of them is in the demo gallery or was trained on. Their
  aligned 112x112 faces come from the committed demo data; the true syndrome and the true causal
  region (the synthetic features' mask) are known, so the analysis can say how well raters find
  them.
* ``"gallery"``: images of a gallery (``[cases] gallery``: a model set of the gmx configuration or a
  gallery file, :func:`case_source_config`). The faces are the gallery's stored photos; the true
  syndrome is the image's label; a case's own patient is left out of the gallery when the model
  ranks and explains it (:func:`leave_patient_out`: the leave-one-patient-out of
  :func:`gmx.gallery.calibrate`). True causal regions exist only where the gallery carries them
  (``extras["gt_mask"]``, as the demo gallery does); otherwise there are none and the analysis says
  so.

Only image ids ever leave this module for the study database.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gmx.study.definition import (
    CASE_SOURCE_GALLERY,
    DEFAULT_CASES_PER_RATER,
    DEMO_TEST_SPLIT,
    StudyDefinition,
    StudyError,
)

DEMO_METADATA = "synth_metadata.csv"
#: The gallery extra that holds true causal regions (``(N, 112, 112)`` bool; the demo gallery's).
TRUE_REGION_EXTRA = "gt_mask"


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
        subjects: image id -> patient id, for gallery cases (the patient left out of the gallery
            when the model looks at the case); empty for the demo (its cases are not in the
            gallery).
    """

    faces: Mapping[str, np.ndarray]
    labels: Mapping[str, str]
    masks: Mapping[str, np.ndarray]
    syndrome_names: Mapping[str, str]
    subjects: Mapping[str, str] = field(default_factory=dict)

    @property
    def regions_known(self) -> bool:
        """Whether any case has a true causal region (the demo; not a real gallery)."""
        return any(np.asarray(m).any() for m in self.masks.values())


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


def gallery_case_problems(gallery: Any, ids: Sequence[str], *, show_photo: bool | None = None
                          ) -> list[str]:  # fmt: skip
    """Why ``ids`` cannot be study cases of ``gallery`` (empty: they can).

    Args:
        gallery: the :class:`~gmx.gallery.Gallery`.
        ids: the study's case ids.
        show_photo: the configuration's ``photos_visible`` (``False`` forbids showing photos).
    """
    from gmx.gallery import may_show_photos

    problems = []
    if gallery.photos is None:
        problems.append(
            f"gallery {gallery.name!r} stores no photos: a study shows each case's face to the "
            "raters, so it needs a gallery built with its photos (`gmx gallery build` keeps them "
            "unless told not to)"
        )
    elif not may_show_photos(gallery, show_photo):
        problems.append(
            f"the photos of gallery {gallery.name!r} may not be shown (photos_visible is false in "
            "the gallery or the configuration): a study shows each case's face to the raters"
        )
    known = {im.image_id for im in gallery.images}
    missing = [i for i in ids if i not in known]
    if missing:
        problems.append(f"cases.ids not in gallery {gallery.name!r}: {missing[:10]}")
    return problems


def load_gallery_cases(gallery: Any, ids: Sequence[str], *, show_photo: bool | None = None
                       ) -> CaseSet:  # fmt: skip
    """The faces (the gallery's stored photos), labels, patients and, where the gallery carries
    them (``extras["gt_mask"]``), true regions of gallery images ``ids``.

    Raises:
        StudyError: no photos, photos that may not be shown, or an id the gallery does not have.
    """
    problems = gallery_case_problems(gallery, ids, show_photo=show_photo)
    if problems:
        raise StudyError("; ".join(problems))
    truth_masks = gallery.extras.get(TRUE_REGION_EXTRA)
    faces, masks, labels, subjects = {}, {}, {}, {}
    for i in ids:
        n = gallery.index_of(i)
        face = np.array(gallery.photos[n], np.uint8)
        face.setflags(write=False)
        faces[i] = face
        im = gallery.images[n]
        labels[i], subjects[i] = im.syndrome_id, im.subject_id
        if truth_masks is not None:
            mask = np.array(truth_masks[n], bool)
            mask.setflags(write=False)
            masks[i] = mask
    names = {sid: s.name for sid, s in gallery.syndromes.items()}
    return CaseSet(faces, labels, masks, names, subjects)


def gallery_case_ids(gallery: Any, n: int = DEFAULT_CASES_PER_RATER) -> list[str]:
    """``n`` gallery image ids for a new study: one image per syndrome in turn (first syndromes
    first), only of syndromes with at least two patients, so that each case's syndrome is still in
    the gallery once its own patient is left out.

    Raises:
        StudyError: the gallery has no such syndrome.
    """
    patients: dict[str, set[str]] = {}
    for im in gallery.images:
        patients.setdefault(im.syndrome_id, set()).add(im.subject_id)
    usable = {s for s, p in patients.items() if len(p) >= 2}
    if not usable:
        raise StudyError(
            f"gallery {gallery.name!r} has no syndrome with two or more patients: a case's "
            "syndrome would leave the gallery with its own patient"
        )
    queues: dict[str, list[str]] = {}
    for im in gallery.images:
        if im.syndrome_id in usable:
            queues.setdefault(im.syndrome_id, []).append(im.image_id)
    out: list[str] = []
    while len(out) < n and any(queues.values()):
        for q in queues.values():
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def leave_patient_out(gallery: Any, subject_id: str | None) -> Any:
    """The gallery without the images of patient ``subject_id`` (the gallery itself for
    ``None``), as :func:`gmx.gallery.calibrate` counts each gallery image: a case is ranked and
    explained as a new patient would be. The copy keeps no photos (rankings and map targets use
    embeddings only; a large gallery's photos are not copied per case)."""
    if subject_id is None:
        return gallery
    keep = np.array([im.subject_id != subject_id for im in gallery.images], dtype=bool)
    if keep.all():
        return gallery
    if not keep.any():
        raise StudyError(f"gallery {gallery.name!r} holds only patient {subject_id!r}")
    bare = replace(gallery, photos=None, encoded_photos=None, photos_visible=False)
    return bare.subset(keep)


def case_source_config(
    study: StudyDefinition,
    base: Any,
    *,
    model_sets: Mapping[str, Any] | None = None,
    study_dir: str | Path | None = None,
) -> Any:
    """The configuration (:class:`~gmx.config.GmxConfig`) whose models and gallery look at the
    study's cases.

    Demo cases: ``base`` (the app's or the command's configuration). Gallery cases: the model set
    named ``cases.gallery`` when ``model_sets`` has it (its models and gallery); otherwise
    ``cases.gallery`` is a gallery file (relative to ``study_dir``), used with ``base``'s models
    (the gallery's fingerprint must match them: loading checks it).
    """
    if study.case_source != CASE_SOURCE_GALLERY:
        return base
    sets = model_sets or {}
    if study.case_gallery in sets:
        return sets[study.case_gallery]
    path = Path(study.case_gallery).expanduser()
    if not path.is_absolute() and study_dir is not None:
        path = Path(study_dir) / path
    return base.with_overrides(gallery_path=path.absolute())


def case_source_text(study: StudyDefinition, cfg: Any) -> str:
    """Where the study's cases come from, in words (``cfg``: :func:`case_source_config`'s)."""
    if study.case_source == CASE_SOURCE_GALLERY:
        return f"cases: images of gallery {Path(cfg.gallery_path).name} (own patient left out)"
    return "cases: held-out demo images"


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
    models: Any,
    gallery: Any,
    face: np.ndarray,
    *,
    methods: Sequence[str],
    top_k: int,
    exclude_subject: str | None = None,
) -> CaseMaterial:
    """Rank the gallery for one aligned face and explain the top suggestion with ``methods``.

    Args:
        models: the gallery's loaded model(s).
        gallery: the gallery.
        face: ``(112, 112, 3)`` uint8 aligned face; not modified.
        methods: registry names (empty: no maps).
        top_k: suggestions kept.
        exclude_subject: the case's own patient when the case is a gallery image: left out of the
            ranking and of the maps' targets (:func:`leave_patient_out`).
    """
    from gmx.aggregate.localisation import explain_against
    from gmx.aggregate.run import gallery_ensemble
    from gmx.gallery import rank

    gallery = leave_patient_out(gallery, exclude_subject)
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


def load_cases(
    study: StudyDefinition,
    data_dir: str | Path,
    gallery: Any = None,
    *,
    show_photo: bool | None = None,
) -> CaseSet:
    """The study's cases from its source: demo data in ``data_dir``, or ``gallery`` (the gallery
    of :func:`case_source_config`) for gallery cases.

    Raises:
        StudyError: an id the source does not have, or a gallery whose photos cannot be shown.
    """
    if study.case_source == CASE_SOURCE_GALLERY:
        if gallery is None:
            raise StudyError("gallery cases need the study's gallery")
        return load_gallery_cases(gallery, study.cases, show_photo=show_photo)
    return load_demo_cases(data_dir, study.cases)


def load_source(cfg: Any) -> tuple[list[Any], Any]:
    """The models and gallery of a configuration (no face aligner: study cases are aligned)."""
    from gmx.encode import load_model
    from gmx.gallery import load_gallery

    models = [load_model(p, device=cfg.device) for p in cfg.model_paths]
    return models, load_gallery(cfg.gallery_path)


def case_maps(
    study: StudyDefinition, answers: Sequence[Any], cases: CaseSet, models: Any, gallery: Any
) -> dict[tuple[str, str], np.ndarray]:
    """``(case, method)`` -> template map of the study's methods, for the cases with region marks
    (each gallery case with its own patient left out, as the raters saw it)."""
    maps: dict[tuple[str, str], np.ndarray] = {}
    if not study.methods:
        return maps
    for c in answered_region_cases(answers):
        if c in cases.faces:
            mat = case_material(models, gallery, cases.faces[c], methods=study.methods, top_k=1,
                                exclude_subject=cases.subjects.get(c))  # fmt: skip
            maps.update({(c, m): v for m, v in mat.maps.items()})
    return maps


__all__ = [
    "TRUE_REGION_EXTRA",
    "CaseMaterial",
    "CaseSet",
    "Suggestion",
    "answered_region_cases",
    "case_maps",
    "case_material",
    "case_source_config",
    "case_source_text",
    "demo_case_ids",
    "demo_truth",
    "gallery_case_ids",
    "gallery_case_problems",
    "leave_patient_out",
    "load_cases",
    "load_demo_cases",
    "load_gallery_cases",
    "load_source",
]
