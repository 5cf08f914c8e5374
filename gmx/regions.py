"""Facial regions from the MediaPipe face mesh, and how much of a map (or of the score) each holds.

Research question 3 of the thesis: *which facial regions* drive GestaltMatcher's answer. The face is
cut into :data:`REGIONS` (about ten anatomical regions) from its 478 mesh landmarks in the aligned
112x112 template (``AlignedFace.landmarks_template``), and every map or score is summarised per region:

* :func:`region_masks` — one integer label image, so every pixel is in at most one region (the
  regions are disjoint by construction). Pixels outside the face oval (hair, ears, background)
  belong to no region.
* :func:`region_mass` — a map's share of positive attribution per region (``mass``) and that share
  divided by the region's share of the face's pixels (``density``: 1 = as much as its size
  predicts, so a large region does not win by size alone).
* :func:`region_occlusion` — the target's score drop when one region is filled (blurred).
* :func:`region_shapley` — exact Shapley values of the regions on the target (Shapley 1953; for
  image regions as in Lundberg & Lee 2017's "exact" explainer): every one of the ``2**n`` subsets
  of present regions is rendered (absent regions filled) and scored in batches; the values sum to
  ``f(all) - f(none)`` (efficiency).

Conventions: points are ``(x, y)`` template pixels (column, row), origin top left; images
``(112, 112, 3)`` uint8 RGB; maps ``(112, 112)`` float, signed. "Right"/"left" are the subject's
(:mod:`gmx.align.mesh`). Region polygons are rasterised with ``cv2.fillPoly`` (boundary pixels
included) on vertices rounded to whole pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from gmx._typing import ImageU8, Points
from gmx.align import mesh as amesh
from gmx.constants import TEMPLATE_SIZE
from gmx.synth import mesh as smesh

#: The regions, in display order (top of the face to the bottom).
REGIONS: tuple[str, ...] = (
    "forehead",
    "brows",
    "glabella",
    "periorbital",
    "nose",
    "cheeks",
    "philtrum",
    "upper_lip",
    "lower_lip",
    "chin",
)

#: Display names of :data:`REGIONS`.
REGION_LABELS: dict[str, str] = {
    "forehead": "Forehead",
    "brows": "Eyebrows",
    "glabella": "Glabella",
    "periorbital": "Periorbital (eyes, lids)",
    "nose": "Nose",
    "cheeks": "Cheeks",
    "philtrum": "Philtrum",
    "upper_lip": "Upper lip",
    "lower_lip": "Lower lip & mouth",
    "chin": "Chin & mandible",
}

#: Format version of a region-profiles file (``benchmarks/regions.py --out``,
#: :func:`load_region_profiles`).
REGION_PROFILES_VERSION = 1

#: Label of pixels in no region (outside the face oval) in :attr:`RegionMasks.labels`.
NO_REGION = -1

#: A periorbital region is the convex hull of the eye's lid loop scaled about the eye centre by
#: this much (horizontal, vertical): lids and the skin around them, not only the fissure.
PERIORBITAL_SCALE: tuple[float, float] = (1.4, 2.6)
#: An eyebrow region is the convex hull of the brow polygon scaled about its centre by this much.
BROW_SCALE: tuple[float, float] = (1.1, 1.8)

#: Philtrum polygon: the nose base (image left to right), then the upper lip's outer contour back
#: (image right to left) between the same columns.
PHILTRUM: tuple[int, ...] = (98, 97, 2, 326, 327, 269, 267, 0, 37, 39)
#: Glabella polygon: inner ends of the brows' upper edges, then the inner eye corners.
GLABELLA: tuple[int, ...] = (107, 336, 362, 133)
#: Upper-lip polygon: outer contour corner to corner, then the inner contour back.
UPPER_LIP: tuple[int, ...] = smesh.LIPS_UPPER_OUTER + tuple(reversed(smesh.LIPS_UPPER_INNER))

#: Painting order: a later region overwrites an earlier one where their raw shapes overlap, so the
#: small, landmark-tight regions win over the broad ones (forehead/cheeks/chin are the remainder).
_PAINT_ORDER: tuple[str, ...] = (
    "cheeks",
    "forehead",
    "chin",
    "philtrum",
    "glabella",
    "brows",
    "periorbital",
    "nose",
    "lower_lip",
    "upper_lip",
)


@dataclass(frozen=True)
class RegionMasks:
    """Disjoint facial regions of one aligned face.

    Attributes:
        labels: ``(112, 112)`` int8, the index into ``names`` of each pixel's region, or
            :data:`NO_REGION`; read-only.
        names: region names (:data:`REGIONS`).
    """

    labels: np.ndarray
    names: tuple[str, ...] = REGIONS

    def mask(self, name: str) -> np.ndarray:
        """``(112, 112)`` bool mask of one region."""
        if name not in self.names:
            raise ValueError(f"unknown region {name!r}; known: {list(self.names)}")
        return self.labels == self.names.index(name)

    @property
    def stack(self) -> np.ndarray:
        """``(R, 112, 112)`` bool masks, one per region in ``names`` order."""
        return self.labels[None] == np.arange(len(self.names), dtype=np.int8)[:, None, None]

    @property
    def areas(self) -> np.ndarray:
        """``(R,)`` pixels per region."""
        return np.bincount(
            self.labels[self.labels >= 0].ravel().astype(np.int64), minlength=len(self.names)
        )


def _fill(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], 1)
    return m.astype(bool)


def _hull(pts: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.round(pts).astype(np.float32)).reshape(-1, 2)


def _scaled(pts: np.ndarray, scale: tuple[float, float], centre: np.ndarray | None = None):
    c = pts.mean(axis=0) if centre is None else centre
    return c + (pts - c) * np.asarray(scale)


def _below_line(shape: tuple[int, int], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels whose row is greater than (below) the straight line through ``a`` and ``b``."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    dx = b[0] - a[0]
    slope = (b[1] - a[1]) / dx if abs(dx) > 1e-9 else 0.0
    return yy > a[1] + slope * (xx - a[0])


def region_masks(landmarks: Points, size: int = TEMPLATE_SIZE) -> RegionMasks:
    """The :data:`REGIONS` of a face from its mesh landmarks.

    Args:
        landmarks: ``(478, 2)`` MediaPipe mesh points ``(x, y)`` in template pixels
            (``AlignedFace.landmarks_template``); not modified.
        size: side of the template in pixels.

    Returns:
        Disjoint regions, all inside the face oval.

    Raises:
        ValueError: if ``landmarks`` is not ``(478, 2)`` finite.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    if p.shape != (amesh.NUM_LANDMARKS, 2) or not np.all(np.isfinite(p)):
        raise ValueError(
            f"landmarks must be ({amesh.NUM_LANDMARKS}, 2) finite, got shape {p.shape}"
        )
    shape = (size, size)
    face = _fill(shape, p[list(amesh.FACE_OVAL)])
    brows = [p[list(b)] for b in (amesh.RIGHT_EYEBROW, amesh.LEFT_EYEBROW)]
    brow_tops = [b[np.argmin(b[:, 1])] for b in brows]
    raw: dict[str, np.ndarray] = {
        "cheeks": face,
        # above the line through the two brows' highest points
        "forehead": ~_below_line(shape, brow_tops[0], brow_tops[1]),
        # below the line through the mouth corners
        "chin": _below_line(shape, p[smesh.MOUTH_RIGHT], p[smesh.MOUTH_LEFT]),
        "philtrum": _fill(shape, p[list(PHILTRUM)]),
        "glabella": _fill(shape, p[list(GLABELLA)]),
        "brows": np.logical_or(*[_fill(shape, _hull(_scaled(b, BROW_SCALE))) for b in brows]),
        "periorbital": np.logical_or(
            *[
                _fill(shape, _hull(_scaled(p[list(eye)], PERIORBITAL_SCALE, c)))
                for eye, c in zip(
                    (amesh.RIGHT_EYE, amesh.LEFT_EYE), smesh.eye_centres(p), strict=True
                )
            ]
        ),
        "nose": _fill(shape, _hull(p[list(amesh.NOSE)])),
        "lower_lip": _fill(shape, p[list(amesh.LIPS_OUTER)]),
        "upper_lip": _fill(shape, p[list(UPPER_LIP)]),
    }
    labels = np.full(shape, NO_REGION, np.int8)
    for name in _PAINT_ORDER:
        labels[raw[name] & face] = REGIONS.index(name)
    labels.setflags(write=False)
    return RegionMasks(labels)


# ----------------------------------------------------------------------------------------------
# Maps per region


@dataclass(frozen=True)
class RegionMass:
    """A map summarised per region.

    Attributes:
        names: region names.
        mass: ``(R,)`` share of the map's positive attribution (over the whole image) inside each
            region; sums to at most 1 (the rest lies outside the face regions). NaN if the map has
            no positive value.
        density: ``(R,)`` ``mass`` divided by the region's share of the image's pixels (1 = as much
            as its size predicts; NaN for an empty region or a map without positive values).
        mean: ``(R,)`` mean signed map value per pixel of each region (NaN for an empty region).
    """

    names: tuple[str, ...]
    mass: np.ndarray
    density: np.ndarray
    mean: np.ndarray

    def ranking(self, by: str = "density") -> tuple[str, ...]:
        """Region names, most relevant first by ``"density"`` or ``"mass"`` (NaN last)."""
        if by not in ("density", "mass"):
            raise ValueError(f"by must be 'density' or 'mass', got {by!r}")
        v = np.nan_to_num(getattr(self, by), nan=-np.inf)
        return tuple(self.names[i] for i in np.argsort(-v, kind="stable"))

    def rank_of(self, name: str, by: str = "density") -> int:
        """1-based rank of a region in :meth:`ranking`."""
        return self.ranking(by).index(name) + 1


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def region_mass(attribution: np.ndarray, regions: RegionMasks) -> RegionMass:
    """Positive mass, density and mean of a map per region.

    Args:
        attribution: ``(112, 112)`` signed map on the aligned face; not modified.
        regions: from :func:`region_masks` (same size).
    """
    a = np.asarray(attribution, dtype=np.float64)
    if a.shape != regions.labels.shape:
        raise ValueError(f"map shape {a.shape} != regions shape {regions.labels.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("map contains NaN or inf")
    stack = regions.stack
    area = stack.sum(axis=(1, 2)).astype(np.float64)
    pos = np.clip(a, 0.0, None)
    total = pos.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = (stack * pos).sum(axis=(1, 2)) / total if total > 0 else np.full(len(area), np.nan)
        density = mass / (area / a.size)
        density[area == 0] = np.nan
        mean = (stack * a).sum(axis=(1, 2)) / area
    return RegionMass(regions.names, _ro(mass), _ro(density), _ro(mean))


# ----------------------------------------------------------------------------------------------
# Scores per region: occlusion and exact Shapley values

Evaluate = Callable[[np.ndarray], np.ndarray]
"""``(n, 112, 112, 3)`` uint8 faces -> ``(n,)`` float scores of the target."""


def masked_faces(
    face: ImageU8, fill: ImageU8, regions: RegionMasks, present: np.ndarray
) -> np.ndarray:
    """Faces with the absent regions replaced by ``fill``.

    Args:
        face: ``(H, W, 3)`` uint8; not modified.
        fill: ``(H, W, 3)`` uint8 the absent regions take (e.g. the blurred face).
        regions: the regions.
        present: ``(n, R)`` bool, which regions each output keeps. Pixels in no region are kept.

    Returns:
        ``(n, H, W, 3)`` uint8.
    """
    pres = np.asarray(present, dtype=bool)
    if pres.ndim != 2 or pres.shape[1] != len(regions.names):
        raise ValueError(f"present must be (n, {len(regions.names)}), got shape {pres.shape}")
    lab = regions.labels.astype(np.int64)
    # keep[k, y, x]: pixel in no region, or its region present in subset k
    keep = np.ones((len(pres), *lab.shape), bool)
    inside = lab >= 0
    keep[:, inside] = pres[:, lab[inside]]
    return np.where(keep[..., None], np.asarray(face)[None], np.asarray(fill)[None])


def subsets(n: int) -> np.ndarray:
    """``(2**n, n)`` bool: row ``k`` holds player ``i`` iff bit ``i`` of ``k`` is set."""
    if not 0 <= n <= 16:
        raise ValueError(f"exact Shapley needs 0 <= n <= 16 players, got {n}")
    k = np.arange(2**n)[:, None]
    return ((k >> np.arange(n)[None, :]) & 1).astype(bool)


def shapley_from_table(values: np.ndarray) -> np.ndarray:
    """Exact Shapley values from the value of every coalition.

    ``phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! * (v(S + i) - v(S))``.

    Args:
        values: ``(2**n,)`` value of each coalition, indexed as :func:`subsets` (bit ``i`` = player
            ``i`` present).

    Returns:
        ``(n,)`` float64; sums to ``values[-1] - values[0]`` (efficiency).
    """
    v = np.asarray(values, dtype=np.float64)
    n = round(np.log2(len(v))) if len(v) else -1
    if n < 0 or 2**n != len(v):
        raise ValueError(f"need 2**n coalition values, got {len(v)}")
    sub = subsets(n)
    size = sub.sum(axis=1)
    weight = np.array([1.0 / (n * comb(n - 1, int(s))) if s < n else 0.0 for s in size])
    k = np.arange(len(v))
    phi = np.empty(n)
    for i in range(n):
        without = ~sub[:, i]
        s = k[without]
        phi[i] = np.sum(weight[s] * (v[s | (1 << i)] - v[s]))
    return phi


@dataclass(frozen=True)
class RegionScores:
    """The target's score per region: occlusion drops and exact Shapley values.

    Attributes:
        names: region names.
        full: score of the unmodified face, ``f(all)``.
        empty: score with every region filled, ``f(none)``.
        occlusion: ``(R,)`` ``f(all) - f(all but region r)``.
        shapley: ``(R,)`` exact Shapley values (sum ``full - empty``), or ``None`` if not computed.
        evaluations: faces scored.
    """

    names: tuple[str, ...]
    full: float
    empty: float
    occlusion: np.ndarray
    shapley: np.ndarray | None
    evaluations: int


def _evaluate_batched(evaluate: Evaluate, faces_of: Callable[[np.ndarray], np.ndarray],
                      present: np.ndarray, batch_size: int) -> np.ndarray:  # fmt: skip
    out = np.empty(len(present), np.float64)
    for lo in range(0, len(present), batch_size):
        part = present[lo : lo + batch_size]
        scores = np.asarray(evaluate(faces_of(part)), dtype=np.float64).reshape(-1)
        if scores.shape != (len(part),):
            raise ValueError(f"evaluate returned {scores.shape} scores for {len(part)} faces")
        out[lo : lo + batch_size] = scores
    return out


def region_shapley(
    evaluate: Evaluate,
    face: ImageU8,
    regions: RegionMasks,
    fill: ImageU8,
    *,
    shapley: bool = True,
    batch_size: int = 64,
) -> RegionScores:
    """Region occlusion and exact Shapley values of the regions on a target.

    Args:
        evaluate: scores of ``(n, H, W, 3)`` uint8 faces (:func:`target_scorer` for a model and a
            target).
        face: ``(H, W, 3)`` uint8 aligned face; not modified.
        regions: its regions (players; pixels in no region are always kept).
        fill: ``(H, W, 3)`` uint8 what an absent region shows
            (:func:`gmx.metrics.faithfulness.fill_image`, e.g. the blurred face).
        shapley: also the exact Shapley values (``2**R`` faces); else occlusion only (``R + 2``).
        batch_size: faces per call of ``evaluate``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(regions.names)
    face_arr, fill_arr = np.asarray(face), np.asarray(fill)
    if fill_arr.shape != face_arr.shape:
        raise ValueError(f"fill shape {fill_arr.shape} != face shape {face_arr.shape}")

    def faces_of(present: np.ndarray) -> np.ndarray:
        return masked_faces(face_arr, fill_arr, regions, present)

    if shapley:
        table = _evaluate_batched(evaluate, faces_of, subsets(n), batch_size)
        full_mask = 2**n - 1
        drop = np.array([table[full_mask] - table[full_mask & ~(1 << i)] for i in range(n)])
        phi = _ro(shapley_from_table(table))
        return RegionScores(
            regions.names, float(table[-1]), float(table[0]), _ro(drop), phi, len(table)
        )
    present = np.ones((n + 2, n), bool)
    present[np.arange(n), np.arange(n)] = False
    present[n + 1] = False
    s = _evaluate_batched(evaluate, faces_of, present, batch_size)
    return RegionScores(regions.names, float(s[n]), float(s[n + 1]), _ro(s[n] - s[:n]), None, n + 2)


def target_scorer(
    models: Any,
    target: Any,
    variants: Sequence[Any] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
) -> Evaluate:
    """``faces -> scores``: the target's :meth:`~gmx.explain.Target.ranking_score` over variants.

    The same scoring as the deletion/insertion curves (:mod:`gmx.metrics.faithfulness`): one
    forward pass per variant per batch, in inference mode; the models must be in eval mode.
    """
    # One implementation: the faithfulness metrics' batch scorer (one target for every row).
    from gmx.metrics.faithfulness import BatchScorer

    scorer = BatchScorer(models, variants, classifiers, [target], None, None)

    def evaluate(faces: np.ndarray) -> np.ndarray:
        scores, _ = scorer(np.asarray(faces), np.zeros(len(faces), np.int64))
        return scores

    return evaluate


# ----------------------------------------------------------------------------------------------
# HPO features linked to regions (issue 12)

#: The synthetic demo's features (:data:`gmx.synth.features.FEATURES`, keyed by feature key) ->
#: the regions their generator changes (from each feature's ``region`` and ``description``).
SYNTH_FEATURE_REGIONS: dict[str, tuple[str, ...]] = {
    "hypertelorism": ("periorbital",),
    "hypotelorism": ("periorbital",),
    "downslanted_pf": ("periorbital",),
    "upslanted_pf": ("periorbital",),
    "short_pf": ("periorbital",),
    "ptosis": ("periorbital",),
    "synophrys": ("glabella", "brows"),
    "thick_eyebrow": ("brows",),
    "long_philtrum": ("philtrum", "upper_lip", "lower_lip", "chin"),
    "thin_upper_lip": ("upper_lip",),
    "thick_lower_lip": ("lower_lip",),
    "wide_mouth": ("upper_lip", "lower_lip"),
    "narrow_mouth": ("upper_lip", "lower_lip"),
    "micrognathia": ("chin",),
    "broad_nasal_tip": ("nose",),
    "full_cheeks": ("cheeks",),
}

#: Further facial HPO terms -> regions: gmx's own anatomical reading of each term's label (labels
#: from the HPO release shipped with ``hpo3``, :mod:`gmx.hpo`); not an HPO annotation.
FACIAL_HPO_REGIONS: dict[str, tuple[str, ...]] = {
    "HP:0000348": ("forehead",),  # High forehead
    "HP:0000341": ("forehead",),  # Narrow forehead
    "HP:0000336": ("brows",),  # Prominent supraorbital ridges
    "HP:0045075": ("brows",),  # Sparse eyebrow
    "HP:0002553": ("brows",),  # Highly arched eyebrow
    "HP:0000431": ("nose", "glabella"),  # Wide nasal bridge
    "HP:0000286": ("periorbital",),  # Epicanthus
    "HP:0000506": ("periorbital",),  # Telecanthus
    "HP:0000448": ("nose",),  # Prominent nose
    "HP:0000463": ("nose",),  # Anteverted nares
    "HP:0011800": ("cheeks", "nose"),  # Midface retrusion
    "HP:0000319": ("philtrum",),  # Smooth philtrum
    "HP:0000322": ("philtrum",),  # Short philtrum
    "HP:0000233": ("upper_lip", "lower_lip"),  # Thin vermilion border
    "HP:0000232": ("lower_lip",),  # Everted lower lip vermilion
    "HP:0000307": ("chin",),  # Pointed chin
    "HP:0000303": ("chin",),  # Mandibular prognathia
}


def _hpo_regions() -> dict[str, tuple[str, ...]]:
    from gmx.synth.features import FEATURES

    table = {f.hpo_id: SYNTH_FEATURE_REGIONS[f.key] for f in FEATURES}
    return {**FACIAL_HPO_REGIONS, **table}


#: HPO id -> facial regions: the demo's features plus :data:`FACIAL_HPO_REGIONS`.
HPO_REGIONS: dict[str, tuple[str, ...]] = _hpo_regions()

#: A feature's region counts as highlighted when it is among this many top regions of the map.
TOP_REGIONS = 3


@dataclass(frozen=True)
class FeatureRegions:
    """One HPO feature of a syndrome against a map's region ranking.

    Attributes:
        hpo_id: the term.
        label: its HPO label (``None`` when the shipped HPO does not hold it).
        regions: the facial regions the term concerns (empty: not a term gmx places on the face).
        best_rank: 1-based rank (by density) of the term's best region in the map (``None``: no
            region, or the map has no positive values).
        highlighted: ``best_rank <= top``.
    """

    hpo_id: str
    label: str | None
    regions: tuple[str, ...]
    best_rank: int | None
    highlighted: bool

    @property
    def summary(self) -> str:
        """``Hypertelorism -> Periorbital (eyes, lids): rank 1 of 10``, in words."""
        name = self.label or self.hpo_id
        if not self.regions:
            return f"{name}: no facial region assigned"
        where = ", ".join(REGION_LABELS[r] for r in self.regions)
        if self.best_rank is None:
            return f"{name} -> {where}: the map has no positive relevance"
        return f"{name} -> {where}: rank {self.best_rank} of {len(REGIONS)}"


def feature_regions(
    hpo_ids: Sequence[str], mass: RegionMass, *, top: int = TOP_REGIONS
) -> tuple[FeatureRegions, ...]:
    """Which of a syndrome's features' regions a map highlights on this face.

    Args:
        hpo_ids: the syndrome's HPO terms (``Syndrome.hpo``), in its order.
        mass: the map's :func:`region_mass` on this face.
        top: a region counts as highlighted among the map's ``top`` regions by density.
    """
    from gmx.hpo import hpo_terms

    ranking = mass.ranking("density")
    valid = not np.all(np.isnan(mass.density))
    out = []
    for term in hpo_terms(dict.fromkeys(h.strip() for h in hpo_ids if h.strip())):
        regions = HPO_REGIONS.get(term.hpo_id, ())
        ranks = [ranking.index(r) + 1 for r in regions if r in ranking]
        best = min(ranks) if ranks and valid else None
        out.append(
            FeatureRegions(term.hpo_id, term.label, regions, best, best is not None and best <= top)
        )
    return tuple(out)


@dataclass(frozen=True)
class RegionProfile:
    """One map of one explained syndrome, summarised per region, beside the syndrome's features.

    Attributes:
        row_label: the explained syndrome (``#1 Name``).
        method: the map's method (display name).
        mass: the map per region (:func:`region_mass`).
        features: the syndrome's HPO features against the map's regions (:func:`feature_regions`).
        top: the map's :data:`TOP_REGIONS` regions by density, most relevant first.
    """

    row_label: str
    method: str
    mass: RegionMass
    features: tuple[FeatureRegions, ...]
    top: tuple[str, ...]

    @property
    def summary(self) -> str:
        """``Top regions: Nose (31%, 2.4x its size), ...``: both numbers, in words."""
        i = self.mass.names.index
        parts = [
            f"{REGION_LABELS[r]} ({self.mass.mass[i(r)]:.0%}, {self.mass.density[i(r)]:.1f}x its size)"
            for r in self.top
            if np.isfinite(self.mass.density[i(r)])
        ]
        return "Top regions: " + (", ".join(parts) if parts else "none (no positive relevance)")


def region_profile(
    regions: RegionMasks,
    attribution: np.ndarray,
    hpo_ids: Sequence[str] = (),
    *,
    row_label: str = "",
    method: str = "",
    top: int = TOP_REGIONS,
) -> RegionProfile:
    """A map's :class:`RegionProfile` on a face (mass, density, top regions, linked features)."""
    mass = region_mass(attribution, regions)
    features = feature_regions(hpo_ids, mass, top=top)
    best = mass.ranking("density")[:top] if not np.all(np.isnan(mass.density)) else ()
    return RegionProfile(row_label, method, mass, features, best)


# ----------------------------------------------------------------------------------------------
# Stored region profiles (the demo's example faces, ``benchmarks/regions.py --out``)

#: File name of the demo's region profiles (next to its model, like the scorecard).
DEMO_REGION_PROFILES_NAME = "regions.json"


@dataclass(frozen=True)
class FaceRegions:
    """One explained face's stored region profile (its own syndrome's score).

    Attributes:
        photo: the photo's file name; syndrome: the syndrome it was explained against; rank: the
            syndrome's rank for this photo.
        true_regions: the regions of the syndrome's features (the demo's generator changed them).
        methods: method -> :class:`RegionMass` of its map (``mean`` is NaN: not stored).
        occlusion: ``(R,)`` the score drop when each region alone is blurred.
        shapley: ``(R,)`` exact Shapley values, or ``None`` where not computed.
        full, empty: the score of the face, and with every region blurred.
    """

    photo: str
    syndrome: str
    rank: int
    true_regions: tuple[str, ...]
    methods: dict[str, RegionMass]
    occlusion: np.ndarray
    shapley: np.ndarray | None
    full: float
    empty: float

    def profile(
        self, method: str, hpo_ids: Sequence[str] = (), *, label: str = ""
    ) -> RegionProfile:
        """The :class:`RegionProfile` of one method's map beside the syndrome's HPO features."""
        mass = self.methods[method]
        best = mass.ranking("density")[:TOP_REGIONS] if not np.all(np.isnan(mass.density)) else ()
        return RegionProfile(label, method, mass, feature_regions(hpo_ids, mass), best)

    def score_ranking(self, by: str = "occlusion") -> tuple[str, ...]:
        """Regions, largest ``"occlusion"`` drop or ``"shapley"`` value first."""
        values = self.shapley if by == "shapley" else self.occlusion
        if values is None:
            return ()
        v = np.nan_to_num(values, nan=-np.inf)
        return tuple(REGIONS[i] for i in np.argsort(-v, kind="stable"))


@dataclass(frozen=True)
class RegionProfiles:
    """A region-profiles file: one :class:`FaceRegions` per syndrome (its example face).

    ``model_fingerprint``: the models + TTA that scored them (the gallery's); ``variants``: their
    labels; ``faces``: syndrome -> face, in syndrome order.
    """

    model_fingerprint: str
    variants: tuple[str, ...]
    faces: dict[str, FaceRegions]

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for f in self.faces.values() for m in f.methods))


def _arr(values: Any) -> np.ndarray:
    return _ro(np.array([np.nan if values.get(r) is None else values[r] for r in REGIONS]))


def region_profiles_from_json(data: dict[str, Any]) -> RegionProfiles:
    """Read what ``benchmarks/regions.py --out`` writes.

    Raises:
        ValueError: another format version, other regions, or a malformed file.
    """
    if data.get("regions_version") != REGION_PROFILES_VERSION:
        raise ValueError(
            f"region profiles format {data.get('regions_version')!r}, "
            f"expected {REGION_PROFILES_VERSION}"
        )
    if tuple(data.get("regions", ())) != REGIONS:
        raise ValueError("region profiles of other regions than gmx.regions.REGIONS")
    try:
        faces = {}
        for rec in sorted(data["faces"], key=lambda r: r["syndrome"]):
            methods = {
                m: RegionMass(REGIONS, _arr(v["share"]), _arr(v["density"]),
                              _ro(np.full(len(REGIONS), np.nan)))
                for m, v in rec["methods"].items()
            }  # fmt: skip
            sh = rec["shapley"]
            faces[str(rec["syndrome"])] = FaceRegions(
                str(rec["photo"]), str(rec["syndrome"]), int(rec["rank"]),
                tuple(rec["true_regions"]), methods, _arr(sh["occlusion"]),
                _arr(sh["values"]) if sh.get("values") else None, float(sh["full"]),
                float(sh["empty"]),
            )  # fmt: skip
        return RegionProfiles(
            str(data.get("model_fingerprint", "")), tuple(data.get("variants", ())), faces
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed region profiles ({type(exc).__name__}: {exc})") from exc


def load_region_profiles(path: str | Path) -> RegionProfiles:
    """Read a region-profiles JSON file (:func:`region_profiles_from_json`)."""
    return region_profiles_from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def region_profiles_path(model_fingerprint: str) -> Path | None:
    """The region-profiles file made with these models: the demo's (``models/demo``) or
    ``region_profiles/*.json`` in gmx's cache folder; ``None``: none."""
    import os

    from gmx._io import NO_CACHE_ENV, first_json_for_model, user_cache_dir
    from gmx.config import DEMO_DIR

    candidates = [DEMO_DIR / DEMO_REGION_PROFILES_NAME]
    base = user_cache_dir({**os.environ, NO_CACHE_ENV: ""})
    if base is not None and (base / "region_profiles").is_dir():
        candidates.extend(sorted((base / "region_profiles").glob("*.json")))
    return first_json_for_model(model_fingerprint, candidates)


__all__ = [
    "BROW_SCALE",
    "DEMO_REGION_PROFILES_NAME",
    "FACIAL_HPO_REGIONS",
    "HPO_REGIONS",
    "NO_REGION",
    "PERIORBITAL_SCALE",
    "REGIONS",
    "REGION_LABELS",
    "REGION_PROFILES_VERSION",
    "SYNTH_FEATURE_REGIONS",
    "TOP_REGIONS",
    "Evaluate",
    "FaceRegions",
    "FeatureRegions",
    "RegionMasks",
    "RegionMass",
    "RegionProfile",
    "RegionProfiles",
    "RegionScores",
    "feature_regions",
    "load_region_profiles",
    "masked_faces",
    "region_masks",
    "region_mass",
    "region_profile",
    "region_profiles_from_json",
    "region_profiles_path",
    "region_shapley",
    "shapley_from_table",
    "subsets",
    "target_scorer",
]
