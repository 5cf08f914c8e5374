"""Calibrated answers: the distance distributions and what they say about a match distance.

The counts are made by :mod:`gmx.gallery._calibrate` (this module holds the results and reads no
gallery, so that :class:`~gmx.gallery.Gallery` can hold a :class:`Calibration`).

Two ways to count, both with the ranking's distance (the mean over variants of
:func:`~gmx.gallery.cosine_distances`, nearest image per syndrome):

* :func:`~gmx.gallery.calibrate`, *leave-one-patient-out* within the gallery: every gallery image
  is a query against the gallery without its own patient's images, exactly as a new patient would
  be ranked;
* :func:`~gmx.gallery.calibrate_held_out`: labelled query images that are not in the gallery (a
  held-out test split), each against the whole gallery (without its own patient's images if that
  patient is in the gallery).

Each counted query image gives

* its *own* distance: to the nearest image of its own syndrome (other patients),
* its *other* distance: to the nearest image of any other syndrome (the null), and
* its *nearest* distance: to the nearest image of any syndrome (the smaller of the two: its top-1).

Query images whose syndrome has no image of another patient in the gallery are skipped (all three
distances), so the lists are paired: one own and one other distance per counted image.

An optional *unaffected* cohort adds each unaffected face's distance to its nearest syndrome image
(:func:`~gmx.gallery.nearest_syndrome_distances`).

At a distance ``d``, :meth:`Calibration.statement` counts how many own / other / unaffected
distances are ``<= d`` and estimates the PPV ``P(same syndrome | nearest distance <= d)`` = own /
(own + other) among those, with a Wilson 95 % interval. The "not closer than typical" flag is
``d >= median`` of the null: the unaffected cohort's nearest distances when there is one, else the
other-syndrome distances. This is a retrospective count, not a prospective study, and the PPV depends
on the syndrome mix of the counted images (one own vs one other distance per image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: z for a two-sided 95 % interval (the normal's 97.5 % quantile).
WILSON_Z_95 = 1.959963984540054

#: :attr:`Calibration.method` values.
LEAVE_ONE_PATIENT_OUT = "leave-one-patient-out"
HELD_OUT = "held-out"
CALIBRATION_METHODS = (LEAVE_ONE_PATIENT_OUT, HELD_OUT)

#: :attr:`CalibratedMatch.null` values: which distances the "not closer than typical" flag used.
NULL_UNAFFECTED, NULL_OTHER_SYNDROME = "unaffected", "other_syndrome"

#: The face-level message (:meth:`Calibration.not_closer_message`) starts with this.
NOT_CLOSER_THAN_UNAFFECTED = (
    "This face is not closer to any syndrome than typical unaffected faces are"
)
NOT_CLOSER_THAN_OTHER_SYNDROME = (
    "This face is not closer to any syndrome than typical matches to a different syndrome are"
)


def wilson_interval(k: int, n: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials; ``(0, 1)`` when ``n == 0``."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class CalibratedMatch:
    """What the calibration says about one match distance (see :meth:`Calibration.statement`).

    Attributes:
        distance: the match distance asked about.
        n_own / n_own_within / frac_own_within: counted images, how many of them had their own
            syndrome's nearest other-patient image at or below ``distance``, and the fraction.
        n_other / n_other_within / frac_other_within: the same for the nearest image of any other
            syndrome (the null).
        ppv: ``n_own_within / (n_own_within + n_other_within)``, ``None`` when neither is > 0.
        ppv_low / ppv_high: its Wilson 95 % interval (``0, 1`` when nothing was this close).
        n_unaffected / n_unaffected_within / frac_unaffected_within: the unaffected cohort's
            distances to their nearest syndrome, when there is one (``None`` otherwise).
        not_closer_than_typical: ``distance >= typical_distance``.
        null: ``"unaffected"`` or ``"other_syndrome"``: which median the flag used.
        sentence: the statement in plain words (what was counted, no diagnostic claim).
        typical_distance: the median the flag compares with (the unaffected cohort's nearest
            distances when there is one, else the other-syndrome distances); ``None`` if empty.
        method: how the counts were made (:attr:`Calibration.method`).
    """

    distance: float
    n_own: int
    n_own_within: int
    frac_own_within: float
    n_other: int
    n_other_within: int
    frac_other_within: float
    ppv: float | None
    ppv_low: float
    ppv_high: float
    n_unaffected: int | None
    n_unaffected_within: int | None
    frac_unaffected_within: float | None
    not_closer_than_typical: bool
    null: str
    sentence: str
    typical_distance: float | None = None
    method: str = LEAVE_ONE_PATIENT_OUT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def _within(sorted_values: np.ndarray, d: float) -> int:
    return int(np.searchsorted(sorted_values, d, side="right"))


def _frozen_sorted(a: Any, what: str = "distances") -> np.ndarray:
    out = np.sort(np.asarray(a, dtype=np.float64))
    if out.ndim != 1 or not np.isfinite(out).all():
        raise ValueError(f"{what} must be a 1-d array of finite distances, got shape {out.shape}")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Calibration:
    """Distance distributions of a gallery's counted query images (from :func:`calibrate` or
    :func:`calibrate_held_out`); stored in the gallery file (:attr:`Gallery.calibration`).

    Attributes:
        gallery_name: the gallery's name (a calibration belongs to one gallery).
        own_distances: sorted read-only ``(n,)`` own-syndrome nearest distances, one per counted image.
        other_distances: sorted read-only ``(n,)`` other-syndrome nearest distances, same images.
        unaffected_distances: sorted read-only unaffected-to-nearest-syndrome distances, or ``None``.
        n_images: images counted (``n``).
        n_skipped_images: images skipped (their syndrome has no image of another patient in the
            gallery).
        skipped_syndromes: ids of the syndromes skipped for that reason, sorted.
        method: ``"leave-one-patient-out"`` (the gallery's own images) or ``"held-out"``
            (labelled images that are not in the gallery).
        nearest_distances: sorted read-only ``(n,)`` distances of the counted images to their
            nearest syndrome (``min(own, other)`` per image, their top-1), or ``None`` (a
            calibration made before gmx kept them).
        model_fingerprint: fingerprint of the models the gallery was embedded with (``""`` when
            unknown); a gallery refuses a calibration of other models.
        provenance: free text: what the queries and the unaffected cohort were.
    """

    gallery_name: str
    own_distances: np.ndarray
    other_distances: np.ndarray
    unaffected_distances: np.ndarray | None
    n_images: int
    n_skipped_images: int
    skipped_syndromes: tuple[str, ...]
    method: str = LEAVE_ONE_PATIENT_OUT
    nearest_distances: np.ndarray | None = None
    model_fingerprint: str = ""
    provenance: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        for name in ("own_distances", "other_distances"):
            set_(self, name, _frozen_sorted(getattr(self, name), name))
        for name in ("unaffected_distances", "nearest_distances"):
            if getattr(self, name) is not None:
                set_(self, name, _frozen_sorted(getattr(self, name), name))
        n = self.own_distances.size
        if self.other_distances.size != n or self.n_images != n:
            raise ValueError(
                f"own ({n}) and other ({self.other_distances.size}) distances must be paired, one "
                f"per counted image (n_images={self.n_images})"
            )
        if self.nearest_distances is not None and self.nearest_distances.size != n:
            raise ValueError(
                f"nearest_distances must hold {n} values, got {self.nearest_distances.size}"
            )
        if self.n_skipped_images < 0:
            raise ValueError(f"n_skipped_images must be >= 0, got {self.n_skipped_images}")
        set_(self, "skipped_syndromes", tuple(sorted(self.skipped_syndromes)))

    @property
    def n_unaffected(self) -> int | None:
        """Size of the unaffected cohort, ``None`` without one."""
        return None if self.unaffected_distances is None else int(self.unaffected_distances.size)

    @property
    def null(self) -> str:
        """Which distances the "not closer than typical" flag compares with."""
        un = self.unaffected_distances
        return NULL_UNAFFECTED if un is not None and un.size else NULL_OTHER_SYNDROME

    @property
    def typical_distance(self) -> float | None:
        """Median of the null (unaffected nearest distances, else other-syndrome distances)."""
        values = self.unaffected_distances if self.null == NULL_UNAFFECTED else self.other_distances
        return float(np.median(values)) if values is not None and values.size else None

    def not_closer_message(self, nearest_distance: float) -> str | None:
        """The face-level message when a face's nearest-syndrome (top-1) distance is at or above the
        typical distance of the null, else ``None``."""
        d = float(nearest_distance)
        typical = self.typical_distance
        if not math.isfinite(d) or typical is None or d < typical:
            return None
        if self.null == NULL_UNAFFECTED:
            return (
                f"{NOT_CLOSER_THAN_UNAFFECTED}: its nearest syndrome is at distance {d:.3f}, at or "
                f"above the median {typical:.3f} of {self.n_unaffected} unaffected people's "
                "distances to their nearest syndrome: at least half of the unaffected people were "
                "this close to some syndrome, so the suggestions below say little on their own."
            )
        return (
            f"{NOT_CLOSER_THAN_OTHER_SYNDROME}: its nearest syndrome is at distance {d:.3f}, at or "
            f"above the median {typical:.3f} of the distances to a different syndrome (the "
            "calibration has no unaffected cohort), so the suggestions below say little on their "
            "own."
        )

    def statement(self, distance: float) -> CalibratedMatch:
        """What the calibration's counts say about a match at ``distance``."""
        d = float(distance)
        if not math.isfinite(d):
            raise ValueError(f"distance must be finite, got {distance!r}")
        n_own = int(self.own_distances.size)
        n_other = int(self.other_distances.size)
        k_own = _within(self.own_distances, d)
        k_other = _within(self.other_distances, d)
        f_own = k_own / n_own if n_own else 0.0
        f_other = k_other / n_other if n_other else 0.0
        n_close = k_own + k_other
        ppv = k_own / n_close if n_close else None
        low, high = wilson_interval(k_own, n_close)
        un = self.unaffected_distances
        n_un = k_un = f_un = None
        if un is not None:
            n_un = int(un.size)
            k_un = _within(un, d)
            f_un = k_un / n_un if n_un else 0.0
        null, typical = self.null, self.typical_distance
        flag = typical is not None and d >= typical

        if self.method == HELD_OUT:
            counted = f"Of {n_own} held-out images of affected patients (not in the gallery), "
        else:
            counted = (
                f"Of {n_own} gallery images (each compared with the rest of the gallery, its own "
                "patient left out), "
            )
        words = [
            f"{counted}{k_own} of {n_own} ({f_own:.0%}) had a patient of their own syndrome at "
            f"distance {d:.3f} or closer, and {k_other} of {n_other} ({f_other:.0%}) had a patient "
            "of another syndrome that close."
        ]
        if un is not None:
            words.append(
                f"{k_un} of {n_un} unaffected people ({f_un:.0%}) were this close to some syndrome."
            )
        if ppv is None:
            words.append("No match was this close, so no PPV can be estimated.")
        else:
            words.append(
                f"Of the {n_close} nearest matches this close, {ppv:.0%} were the same syndrome "
                f"(estimated PPV, 95 % interval {low:.0%}-{high:.0%}); this depends on the "
                f"syndrome mix of the gallery {self.gallery_name!r}."
            )
        if flag:
            who = (
                "unaffected faces" if null == NULL_UNAFFECTED else "matches to a different syndrome"
            )
            words.append(f"This match is not closer than typical {who} (median {typical:.3f}).")
        return CalibratedMatch(
            distance=d,
            n_own=n_own,
            n_own_within=k_own,
            frac_own_within=f_own,
            n_other=n_other,
            n_other_within=k_other,
            frac_other_within=f_other,
            ppv=ppv,
            ppv_low=low,
            ppv_high=high,
            n_unaffected=n_un,
            n_unaffected_within=k_un,
            frac_unaffected_within=f_un,
            not_closer_than_typical=flag,
            null=null,
            sentence=" ".join(words),
            typical_distance=typical,
            method=self.method,
        )

    def auroc(self) -> float | None:
        """AUROC of affected vs unaffected by nearest-syndrome distance (smaller = affected).

        ``P(affected nearest < unaffected nearest) + 0.5 P(equal)`` over all pairs (Mann-Whitney);
        ``None`` without an unaffected cohort or without :attr:`nearest_distances`.
        """
        a, u = self.nearest_distances, self.unaffected_distances
        if a is None or u is None or not a.size or not u.size:
            return None
        below = np.searchsorted(u, a, side="left")  # unaffected strictly closer than each a
        upto = np.searchsorted(u, a, side="right")
        wins = (u.size - upto).sum() + 0.5 * (upto - below).sum()
        return float(wins / (a.size * u.size))


#: Quantiles :func:`calibration_summary` reports for each distribution.
SUMMARY_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class DistanceSummary:
    """Size and quantiles of one distance distribution (``n == 0``: all ``None``)."""

    n: int
    min: float | None
    quantiles: tuple[tuple[float, float], ...]
    max: float | None

    @classmethod
    def of(cls, values: np.ndarray | None) -> DistanceSummary | None:
        """The summary of sorted ``values``; ``None`` for ``None``."""
        if values is None:
            return None
        if not values.size:
            return cls(0, None, (), None)
        qs = tuple((q, float(np.quantile(values, q))) for q in SUMMARY_QUANTILES)
        return cls(int(values.size), float(values[0]), qs, float(values[-1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"n", "min", "q10", "q25", "median", "q75", "q90", "max"}``."""
        out: dict[str, Any] = {"n": self.n, "min": self.min}
        for q, v in self.quantiles:
            out["median" if q == 0.5 else f"q{round(q * 100)}"] = v
        out["max"] = self.max
        return out


@dataclass(frozen=True)
class CalibrationSummary:
    """The figures of a calibration (:func:`calibration_summary`): distributions, PPV curve, AUROC.

    Attributes:
        gallery_name / method / n_images / n_skipped_images / skipped_syndromes / provenance: as
            in :class:`Calibration`.
        own / other / nearest / unaffected: :class:`DistanceSummary` of each distribution
            (``None`` where the calibration has none).
        typical_distance: the flag's median (:attr:`Calibration.typical_distance`) and ``null``.
        auroc: :meth:`Calibration.auroc` (affected vs unaffected by nearest distance), or ``None``.
        curve: the statements at the reported distances.
    """

    gallery_name: str
    method: str
    n_images: int
    n_skipped_images: int
    skipped_syndromes: tuple[str, ...]
    provenance: str
    own: DistanceSummary
    other: DistanceSummary
    nearest: DistanceSummary | None
    unaffected: DistanceSummary | None
    null: str
    typical_distance: float | None
    auroc: float | None
    curve: tuple[CalibratedMatch, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; each curve point without its sentence."""
        out = {k: getattr(self, k) for k in ("gallery_name", "method", "n_images")}
        out.update(
            n_skipped_images=self.n_skipped_images,
            skipped_syndromes=list(self.skipped_syndromes),
            provenance=self.provenance,
            distributions={
                k: None if v is None else v.to_dict()
                for k, v in (
                    ("own", self.own),
                    ("other", self.other),
                    ("nearest", self.nearest),
                    ("unaffected", self.unaffected),
                )
            },
            null=self.null,
            typical_distance=self.typical_distance,
            auroc_affected_vs_unaffected=self.auroc,
            ppv_curve=[
                {k: v for k, v in m.to_dict().items() if k not in ("sentence", "method")}
                for m in self.curve
            ],
        )
        return out


def calibration_summary(
    calibration: Calibration, distances: Sequence[float] | None = None
) -> CalibrationSummary:
    """Distributions, PPV curve and AUROC of a calibration.

    Args:
        calibration: the calibration.
        distances: where to evaluate the PPV curve; default: the :data:`SUMMARY_QUANTILES` of the
            nearest (top-1) distances of the counted images (own distances for calibrations without
            them) and the flag's typical distance, rounded to 3 decimals.
    """
    c = calibration
    if distances is None:
        base = c.nearest_distances if c.nearest_distances is not None else c.own_distances
        points = [float(np.quantile(base, q)) for q in SUMMARY_QUANTILES]
        if c.typical_distance is not None:
            points.append(c.typical_distance)
        distances = sorted({round(p, 3) for p in points})
    return CalibrationSummary(
        gallery_name=c.gallery_name,
        method=c.method,
        n_images=c.n_images,
        n_skipped_images=c.n_skipped_images,
        skipped_syndromes=c.skipped_syndromes,
        provenance=c.provenance,
        own=DistanceSummary.of(c.own_distances),  # type: ignore[arg-type]
        other=DistanceSummary.of(c.other_distances),  # type: ignore[arg-type]
        nearest=DistanceSummary.of(c.nearest_distances),
        unaffected=DistanceSummary.of(c.unaffected_distances),
        null=c.null,
        typical_distance=c.typical_distance,
        auroc=c.auroc(),
        curve=tuple(c.statement(d) for d in distances),
    )


__all__ = [
    "CALIBRATION_METHODS",
    "HELD_OUT",
    "LEAVE_ONE_PATIENT_OUT",
    "NOT_CLOSER_THAN_OTHER_SYNDROME",
    "NOT_CLOSER_THAN_UNAFFECTED",
    "SUMMARY_QUANTILES",
    "WILSON_Z_95",
    "CalibratedMatch",
    "Calibration",
    "CalibrationSummary",
    "DistanceSummary",
    "calibration_summary",
    "wilson_interval",
]
