"""Pictures and locations for the Study page: the face with the rater's marks, blinded maps.

Images are ``(H, W, 3)`` uint8 RGB; marks are template pixels ``(x, y)`` (see :mod:`gmx.study.regions`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gmx._typing import ImageU8
from gmx.constants import TEMPLATE_SIZE
from gmx.study.definition import StudyDefinition, load_study, new_template, study_from_text
from gmx.study.regions import GRID, MARK_RADIUS_PX, Annotation, cell_bounds
from gmx.viz import Scale, overlay, robust_limit

#: The face is shown this many pixels wide for marking (3x the template).
DISPLAY_PX = 336
#: Environment variables naming the study file and its database (see docs/study.md).
STUDY_ENV = "GMX_STUDY"
STUDY_DB_ENV = "GMX_STUDY_DB"
#: Cases of the built-in demo pilot (the first held-out demo test images).
DEMO_PILOT_CASES = 3
MARK_COLOUR = (255, 64, 0)
GRID_COLOUR = (255, 255, 255)
_CELL_SHADE = 0.35


def display_to_template(x: float, y: float, width: float, height: float) -> tuple[float, float]:
    """A click on the face shown ``width`` x ``height`` pixels -> template pixels ``(x, y)``.

    Raises:
        ValueError: for a non-positive display size.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"display size must be positive, got {width} x {height}")
    return x * TEMPLATE_SIZE / width, y * TEMPLATE_SIZE / height


def marks_picture(face: ImageU8, ann: Annotation, side: int = DISPLAY_PX) -> ImageU8:
    """The face enlarged to ``side`` pixels with the grid, ticked cells shaded and clicked marks
    drawn as circles of the marked radius. ``face`` is not modified."""
    f = side / TEMPLATE_SIZE
    img = cv2.resize(np.asarray(face), (side, side), interpolation=cv2.INTER_LINEAR).astype(
        np.float32
    )
    for c in ann.cells:
        x0, y0, x1, y1 = (round(v * f) for v in cell_bounds(c))
        img[y0:y1, x0:x1] = (
            img[y0:y1, x0:x1] * (1 - _CELL_SHADE) + np.array(MARK_COLOUR) * _CELL_SHADE
        )
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    for k in range(1, GRID):
        p = round(k * side / GRID)
        cv2.line(out, (p, 0), (p, side - 1), GRID_COLOUR, 1)
        cv2.line(out, (0, p), (side - 1, p), GRID_COLOUR, 1)
    for x, y in ann.points:
        cv2.circle(out, (round(x * f), round(y * f)), round(MARK_RADIUS_PX * f), MARK_COLOUR, 2)
    return out


def map_picture(face: ImageU8, values: np.ndarray) -> ImageU8:
    """A map over the face, each map on its own robust scale (signed maps diverging, others
    viridis), so blinded maps are comparable in pattern, not in units."""
    v = np.asarray(values, np.float64)
    limit = robust_limit(v)
    if np.nanmin(v) < 0:
        return overlay(face, v, Scale(-limit, limit, True), cmap="PiYG")
    return overlay(face, v, Scale(0.0, limit), cmap="viridis")


@dataclass(frozen=True)
class StudyLocation:
    """Where the app finds the study: the study file (``None``: the built-in demo pilot) and the
    answers database."""

    study_path: Path | None
    db_path: Path

    @property
    def study_dir(self) -> Path | None:
        """The study file's folder (relative gallery paths are read from it)."""
        return None if self.study_path is None else self.study_path.parent


def study_location(environ: Mapping[str, str] | None = None) -> StudyLocation:
    """The study of this server: ``GMX_STUDY`` / ``GMX_STUDY_DB``. Without ``GMX_STUDY_DB`` the
    answers go beside the study file (``study.answers.sqlite``); the demo pilot (no ``GMX_STUDY``)
    keeps its throw-away answers in gmx's cache folder."""
    from gmx._io import NO_CACHE_ENV, user_cache_dir

    env = os.environ if environ is None else environ
    study = env.get(STUDY_ENV) or None
    db = env.get(STUDY_DB_ENV) or None
    if db is None and study:
        db = str(Path(study).with_suffix(".answers.sqlite"))
    if db is None:
        base = user_cache_dir({**env, NO_CACHE_ENV: ""}) or Path(".cache")
        db = str(base / "study" / "demo-pilot.sqlite")
    return StudyLocation(Path(study) if study else None, Path(db))


def demo_pilot(data_dir: str | Path, n_cases: int = DEMO_PILOT_CASES) -> StudyDefinition:
    """The built-in pilot: held-out demo test images of ``n_cases`` different syndromes (the first
    of each), their syndromes' composite faces, the thesis-derived items."""
    from gmx.study.cases import demo_case_ids, demo_truth

    truth = demo_truth(data_dir)
    first: dict[str, str] = {}
    for i in demo_case_ids(data_dir):
        first.setdefault(truth[i], i)
    ids = list(first.values())[:n_cases]
    syndromes = ", ".join(f'"{s}"' for s in sorted({truth[i] for i in ids}))
    text = new_template(cases=ids, name="gmx demo pilot").replace(
        "syndromes = []", f"syndromes = [{syndromes}]"
    )
    return study_from_text(text)


def resolve_study(location: StudyLocation, data_dir: str | Path) -> StudyDefinition:
    """The study at ``location`` (the demo pilot without a study file).

    Raises:
        StudyError: the study file is missing or invalid.
    """
    if location.study_path is None:
        return demo_pilot(data_dir)
    return load_study(location.study_path)


__all__ = [
    "DEMO_PILOT_CASES",
    "DISPLAY_PX",
    "STUDY_DB_ENV",
    "STUDY_ENV",
    "StudyLocation",
    "demo_pilot",
    "display_to_template",
    "map_picture",
    "marks_picture",
    "resolve_study",
    "study_location",
]
