""" "Where did you look?": rater region marks, imported fixations, and their agreement with maps.

Coordinates: template pixels of the aligned 112x112 face, ``(x, y)`` = (column, row), origin top left.
A rater marks regions by clicking points on the face (each point stands for a disc of
:data:`MARK_RADIUS_PX`) and/or ticking cells of a :data:`GRID` x :data:`GRID` grid. The same marks
serve as "fixations" (points, clicked cells' centres) for the saliency metrics:

* AUC-Judd (Judd et al. 2009, as in the MIT saliency benchmark): thresholds at the map's values at
  the fixations; true positives = share of fixations at or above, false positives = share of the
  other pixels at or above; area under that ROC curve (0.5 = chance). No tie-breaking jitter.
* NSS (Peters et al. 2005): the mean of the z-scored map at the fixations (duration-weighted when
  durations are given); 0 = chance.
* IoU at top-k %: the map's ``k`` % highest pixels (ties in raster order) against the marked region.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gmx.constants import TEMPLATE_SIZE
from gmx.explain.compare import top_mask as compare_top_mask
from gmx.study.definition import StudyError

#: The region grid shown when image clicks are not available: GRID x GRID cells over the face.
GRID = 4
#: A clicked point marks a disc of this radius (template pixels; the inter-ocular distance is ~38).
MARK_RADIUS_PX = 8
#: Default share of the map's pixels compared with the marked region (IoU at top-k %).
TOP_PERCENT = 10.0
FIXATION_COLUMNS: tuple[str, ...] = ("image_id", "x", "y", "duration")


@dataclass(frozen=True)
class Annotation:
    """A rater's marks on one face.

    Attributes:
        points: clicked ``(x, y)`` template pixels.
        cells: ticked grid cells, ``row * GRID + col``.
        durations: one weight per point (imported fixations: seconds); empty = all 1.
    """

    points: tuple[tuple[float, float], ...] = ()
    cells: tuple[int, ...] = ()
    durations: tuple[float, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """No point and no cell."""
        return not self.points and not self.cells

    def to_json(self) -> str:
        """The stored value of the ``regions`` answer."""
        return json.dumps({"points": [list(p) for p in self.points], "cells": list(self.cells)})

    @staticmethod
    def from_json(text: str) -> Annotation:
        """Parse a stored ``regions`` value.

        Raises:
            ValueError: not the stored format.
        """
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"regions value must be a JSON object, got {text[:40]!r}")
        points = tuple((float(x), float(y)) for x, y in d.get("points", []))
        cells = tuple(int(c) for c in d.get("cells", []))
        return Annotation(points, cells)

    def with_point(self, x: float, y: float) -> Annotation:
        """A copy with one more point (clipped to the template)."""
        p = (float(np.clip(x, 0, TEMPLATE_SIZE - 1)), float(np.clip(y, 0, TEMPLATE_SIZE - 1)))
        return Annotation((*self.points, p), self.cells)

    def with_cells(self, cells: Sequence[int]) -> Annotation:
        """A copy with these cells ticked (sorted, unique)."""
        bad = [c for c in cells if not 0 <= c < GRID * GRID]
        if bad:
            raise ValueError(f"grid cells must be in 0..{GRID * GRID - 1}, got {bad}")
        return Annotation(self.points, tuple(sorted(set(cells))))


def cell_bounds(cell: int, size: int = TEMPLATE_SIZE) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` pixel bounds (end exclusive) of a grid cell."""
    row, col = divmod(cell, GRID)
    edges = np.linspace(0, size, GRID + 1).round().astype(int)
    return int(edges[col]), int(edges[row]), int(edges[col + 1]), int(edges[row + 1])


def annotation_mask(ann: Annotation, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """``(size, size)`` bool: discs of :data:`MARK_RADIUS_PX` around the points, plus the cells."""
    mask = np.zeros((size, size), bool)
    yy, xx = np.mgrid[0:size, 0:size]
    for x, y in ann.points:
        mask |= (xx - x) ** 2 + (yy - y) ** 2 <= MARK_RADIUS_PX**2
    for c in ann.cells:
        x0, y0, x1, y1 = cell_bounds(c, size)
        mask[y0:y1, x0:x1] = True
    return mask


def fixations(ann: Annotation, size: int = TEMPLATE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` int ``(x, y)`` fixation pixels (points, then cell centres) and ``(n,)`` weights."""
    pts = [(round(x), round(y)) for x, y in ann.points]
    w = list(ann.durations) if ann.durations else [1.0] * len(ann.points)
    for c in ann.cells:
        x0, y0, x1, y1 = cell_bounds(c, size)
        pts.append(((x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2))
        w.append(1.0)
    xy = np.clip(np.array(pts, dtype=np.int64).reshape(-1, 2), 0, size - 1)
    return xy, np.array(w, dtype=np.float64)


def _checked_map(saliency: np.ndarray) -> np.ndarray:
    s = np.asarray(saliency, np.float64)
    if s.ndim != 2:
        raise ValueError(f"map must be 2-D (H, W), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("map contains NaN or inf")
    return s


def auc_judd(saliency: np.ndarray, points: np.ndarray) -> float:
    """AUC-Judd of a map for fixation pixels ``points`` (``(n, 2)`` int ``(x, y)``); NaN without
    fixations or with every pixel fixated."""
    s = _checked_map(saliency)
    xy = np.asarray(points, np.int64).reshape(-1, 2)
    fixated = np.zeros(s.shape, bool)
    fixated[xy[:, 1], xy[:, 0]] = True
    n_fix, n_pix = int(fixated.sum()), s.size
    if n_fix == 0 or n_fix == n_pix:
        return float("nan")
    at_fix = np.sort(s[fixated])[::-1]
    flat = np.sort(s.ravel())
    tp = [0.0]
    fp = [0.0]
    for i, thresh in enumerate(at_fix):
        above = n_pix - int(np.searchsorted(flat, thresh, side="left"))
        tp.append((i + 1) / n_fix)
        fp.append((above - (i + 1)) / (n_pix - n_fix))
    tp.append(1.0)
    fp.append(1.0)
    return float(np.trapezoid(tp, fp))


def nss(saliency: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Normalised scanpath saliency: mean z-scored map value at the fixations (weighted); NaN for a
    constant map or no fixations."""
    s = _checked_map(saliency)
    xy = np.asarray(points, np.int64).reshape(-1, 2)
    sd = s.std()
    if len(xy) == 0 or sd == 0:
        return float("nan")
    z = (s - s.mean()) / sd
    w = np.ones(len(xy)) if weights is None else np.asarray(weights, np.float64)
    return float(np.average(z[xy[:, 1], xy[:, 0]], weights=w))


def top_mask(saliency: np.ndarray, percent: float) -> np.ndarray:
    """The map's ``percent`` % highest pixels (``ceil``; ties in raster order) as a bool mask
    (:func:`gmx.explain.compare.top_mask` with ``rounding="ceil"``)."""
    s = _checked_map(saliency)
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return compare_top_mask(s, percent / 100, rounding="ceil")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (NaN when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = int((a | b).sum())
    return float("nan") if union == 0 else float((a & b).sum() / union)


@dataclass(frozen=True)
class RegionAgreement:
    """Agreement of one map with one set of marks or fixations."""

    auc_judd: float
    nss: float
    iou_top: float


def region_agreement(
    saliency: np.ndarray, ann: Annotation, top_percent: float = TOP_PERCENT
) -> RegionAgreement:
    """AUC-Judd, NSS and IoU at top-``top_percent`` % of a template map against a rater's marks."""
    s = _checked_map(saliency)
    xy, w = fixations(ann, s.shape[0])
    return RegionAgreement(
        auc_judd(s, xy),
        nss(s, xy, w),
        iou(top_mask(s, top_percent), annotation_mask(ann, s.shape[0])),
    )


@dataclass(frozen=True)
class TruthAgreement:
    """How well a rater's marks find a known causal region.

    Attributes:
        iou: IoU of the marked region and the true region.
        hit_rate: share of the fixations (points, cell centres) inside the true region.
        coverage: share of the true region that is marked.
    """

    iou: float
    hit_rate: float
    coverage: float


def truth_agreement(ann: Annotation, truth: np.ndarray) -> TruthAgreement:
    """Marks against a known ``(H, W)`` bool causal region (NaN scores for an empty region)."""
    t = np.asarray(truth, bool)
    marked = annotation_mask(ann, t.shape[0])
    xy, _ = fixations(ann, t.shape[0])
    hit = float(t[xy[:, 1], xy[:, 0]].mean()) if len(xy) else float("nan")
    cov = float((marked & t).sum() / t.sum()) if t.any() else float("nan")
    return TruthAgreement(iou(marked, t) if t.any() else float("nan"), hit, cov)


def read_fixations(path: str | Path) -> dict[str, Annotation]:
    """Eye-tracking fixations from a CSV file (see :func:`parse_fixations`).

    Raises:
        StudyError: unreadable file, missing columns, bad numbers or points outside the template.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"cannot read {p}: {exc}") from exc
    return parse_fixations(text, name=str(p))


def parse_fixations(text: str, *, name: str = "fixations") -> dict[str, Annotation]:
    """Fixations CSV text with columns ``image_id, x, y, duration`` (template pixels, duration in
    seconds) -> image id -> :class:`Annotation` (points with durations).

    Raises:
        StudyError: missing columns, unreadable numbers or points outside the template.
    """
    p = name
    by_image: dict[str, list[tuple[float, float, float]]] = {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in FIXATION_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise StudyError(f"{p}: missing column(s) {missing}; need {list(FIXATION_COLUMNS)}")
    for n, row in enumerate(reader, start=2):
        try:
            x, y, d = float(row["x"]), float(row["y"]), float(row["duration"])
        except ValueError as exc:
            raise StudyError(f"{p} line {n}: {exc}") from exc
        if not (0 <= x < TEMPLATE_SIZE and 0 <= y < TEMPLATE_SIZE) or d < 0:
            raise StudyError(
                f"{p} line {n}: ({x}, {y}) outside the {TEMPLATE_SIZE}-pixel template "
                f"or negative duration {d}"
            )
        by_image.setdefault(row["image_id"], []).append((x, y, d))
    return {
        k: Annotation(tuple((x, y) for x, y, _ in v), (), tuple(d for *_, d in v))
        for k, v in by_image.items()
    }


__all__ = [
    "FIXATION_COLUMNS",
    "GRID",
    "MARK_RADIUS_PX",
    "TOP_PERCENT",
    "Annotation",
    "RegionAgreement",
    "TruthAgreement",
    "annotation_mask",
    "auc_judd",
    "cell_bounds",
    "fixations",
    "iou",
    "nss",
    "parse_fixations",
    "read_fixations",
    "region_agreement",
    "top_mask",
    "truth_agreement",
]
