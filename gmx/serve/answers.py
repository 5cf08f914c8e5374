"""The service JSON of a diagnosis: one implementation for ``gmx predict`` and ``gmx serve``.

:func:`ranking_json` is GestaltMatcher-Arc's answer (:func:`gmx.gallery.to_service_json`) with the
models, gallery and the gallery's stored calibration of a :class:`~gmx.pipeline.Diagnoser`;
:func:`diagnosis_json` adds what gmx knows about the photo under ``gmx`` (faces found, which one
was ranked, doubts and quality warnings, the photo's SHA-256, timings).

No FastAPI here: ``gmx predict`` imports this module without the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gmx.gallery import to_service_json

if TYPE_CHECKING:
    from gmx.gallery import Ranking
    from gmx.pipeline import Diagnoser, Diagnosis

#: Decimals of a face box coordinate, a detection score and a timing in the ``gmx`` extras.
BOX_DECIMALS = 1
SCORE_DECIMALS = 3
TIMING_DECIMALS = 4


def model_version(diagnoser: Diagnoser) -> str:
    """The ``model_version`` field: the models' names, comma-separated."""
    return ",".join(m.card.name for m in diagnoser.models)


def ranking_json(
    ranking: Ranking,
    diagnoser: Diagnoser,
    *,
    case_id: str,
    top_k: int | None = None,
    demo: bool = False,
) -> dict[str, Any]:
    """The service JSON of a ranking made with ``diagnoser``'s models and gallery, with the
    gallery's stored calibration (``gmx.calibration`` and a ``calibration`` statement per entry of
    ``gmx.syndromes``; absent when the gallery file holds none). Service fields as
    :func:`~gmx.gallery.to_service_json`."""
    gallery = diagnoser.gallery
    return to_service_json(
        ranking,
        case_id=case_id,
        model_version=model_version(diagnoser),
        gallery_version=gallery.version,
        top_k=top_k,
        demo=demo,
        calibration=gallery.calibration,
    )


def diagnosis_extras(d: Diagnosis) -> dict[str, Any]:
    """What gmx adds under ``gmx`` about the photo: ``faces_found``, ``face_index``, ``faces``
    (box and detection score, largest first), ``face_doubts``, ``quality_warnings``,
    ``photo_sha256`` and ``timings_s`` (the only request-specific entry)."""
    face = d.face
    return {
        "faces_found": len(d.alignment.faces),
        "face_index": d.face_index,
        "faces": [
            {
                "box": [round(c, BOX_DECIMALS) for c in f.box],
                "detection_score": round(f.quality.detection_score, SCORE_DECIMALS),
            }
            for f in d.alignment.faces
        ],
        "face_doubts": list(d.doubts),
        "quality_warnings": [] if face is None else list(face.quality.warnings),
        "photo_sha256": d.image_sha256,
        "timings_s": {k: round(v, TIMING_DECIMALS) for k, v in d.timings.items()},
    }


def diagnosis_json(
    d: Diagnosis,
    diagnoser: Diagnoser,
    *,
    case_id: str,
    top_k: int | None = None,
    demo: bool = False,
) -> dict[str, Any]:
    """The ``/predict`` answer (and ``gmx predict --format json``'s) of a finished diagnosis:
    :func:`ranking_json` plus :func:`diagnosis_extras` under ``gmx``.

    Raises:
        ValueError: the diagnosis has no ranking (no face; :attr:`Diagnosis.message` says why).
    """
    if d.ranking is None or d.face is None:
        raise ValueError(d.message or "No face found in the photo.")
    out = ranking_json(d.ranking, diagnoser, case_id=case_id, top_k=top_k, demo=demo)
    out["gmx"].update(diagnosis_extras(d))
    return out


__all__ = ["diagnosis_extras", "diagnosis_json", "model_version", "ranking_json"]
