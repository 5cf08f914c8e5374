"""Calibrated answers from a gallery's stored embeddings (no model passes).

Leave-one-PATIENT-out within the gallery: every image is a query against the gallery without its own
patient's images, exactly as a new patient would be ranked. With the ranking's distance (the mean over
variants of :func:`~gmx.gallery.cosine_distances`), each query image gives

* its *own* distance: to the nearest image of its own syndrome (other patients), and
* its *other* distance: to the nearest image of any other syndrome (the null).

Images of syndromes with a single patient have no own-syndrome neighbour and are skipped (both
distances), so the two lists are paired: one own and one other distance per counted image.

At a distance ``d``, :meth:`Calibration.statement` counts how many own / other distances are ``<= d``
and estimates the PPV ``P(same syndrome | nearest distance <= d)`` = own / (own + other) among those,
with a Wilson 95 % interval. This is a retrospective count on the gallery, not a prospective study,
and the PPV depends on the gallery's syndrome mix (one own vs one other distance per image).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gmx.gallery._model import Gallery
from gmx.gallery._rank import cosine_distances

#: z for a two-sided 95 % interval (the normal's 97.5 % quantile).
WILSON_Z_95 = 1.959963984540054
#: Query images per block of the leave-one-patient-out distance matrix (bounds memory).
_BLOCK = 256


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
    """What the gallery says about one match distance (see :meth:`Calibration.statement`).

    Attributes:
        distance: the match distance asked about.
        n_own / n_own_within / frac_own_within: counted images, how many of them had their own
            syndrome's nearest other-patient image at or below ``distance``, and the fraction.
        n_other / n_other_within / frac_other_within: the same for the nearest image of any other
            syndrome (the null).
        ppv: ``n_own_within / (n_own_within + n_other_within)``, ``None`` when neither is > 0.
        ppv_low / ppv_high: its Wilson 95 % interval (``0, 1`` when nothing was this close).
        n_unaffected / n_unaffected_within / frac_unaffected_within: the unaffected cohort's
            distances to their nearest syndrome, when one was given (``None`` otherwise).
        not_closer_than_typical: ``distance`` is at or above the median of the null (the
            unaffected cohort's distances when given, else the other-syndrome distances).
        null: ``"unaffected"`` or ``"other_syndrome"``: which median the flag used.
        sentence: the statement in plain words (what was counted, no diagnostic claim).
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def _within(sorted_values: np.ndarray, d: float) -> int:
    return int(np.searchsorted(sorted_values, d, side="right"))


def _frozen_sorted(a: np.ndarray) -> np.ndarray:
    out = np.sort(np.asarray(a, dtype=np.float64))
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Calibration:
    """Leave-one-patient-out distance distributions of a gallery (from :func:`calibrate`).

    Attributes:
        gallery_name: the gallery's name (a calibration belongs to one gallery).
        own_distances: sorted read-only ``(n,)`` own-syndrome nearest distances, one per counted image.
        other_distances: sorted read-only ``(n,)`` other-syndrome nearest distances, same images.
        unaffected_distances: sorted read-only unaffected-to-nearest-syndrome distances, or ``None``.
        n_images: images counted (``n``).
        n_skipped_images: images skipped (their syndrome has a single patient).
        skipped_syndromes: ids of the syndromes skipped for that reason, sorted.
    """

    gallery_name: str
    own_distances: np.ndarray
    other_distances: np.ndarray
    unaffected_distances: np.ndarray | None
    n_images: int
    n_skipped_images: int
    skipped_syndromes: tuple[str, ...]

    def statement(self, distance: float) -> CalibratedMatch:
        """What the gallery's leave-one-patient-out counts say about a match at ``distance``."""
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
        if un is not None and un.size:
            null, typical = "unaffected", float(np.median(un))
        else:
            null = "other_syndrome"
            typical = float(np.median(self.other_distances)) if n_other else math.inf
        flag = d >= typical

        words = [
            f"In the gallery {self.gallery_name!r} (leave-one-patient-out), {k_own} of {n_own} "
            f"patients' images ({f_own:.0%}) had an image of their own syndrome at distance "
            f"{d:.3f} or closer, and {k_other} of {n_other} ({f_other:.0%}) had an image of another "
            "syndrome that close."
        ]
        if ppv is None:
            words.append("No gallery match was this close, so no PPV can be estimated.")
        else:
            words.append(
                f"Of the {n_close} nearest matches this close, {ppv:.0%} were the same syndrome "
                f"(estimated PPV, 95 % interval {low:.0%}-{high:.0%}); this depends on the gallery's "
                "syndrome mix."
            )
        if un is not None:
            words.append(
                f"{k_un} of {n_un} unaffected people ({f_un:.0%}) were this close to some syndrome."
            )
        if flag:
            who = "unaffected faces" if null == "unaffected" else "matches to a different syndrome"
            words.append(f"This match is not closer than typical {who}.")
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
        )


def calibrate(gallery: Gallery, *, unaffected: Any = None) -> Calibration:
    """Leave-one-patient-out own/other-syndrome nearest distances of every gallery image.

    Args:
        gallery: the gallery (its stored embeddings; nothing is modified).
        unaffected: optional 1-d distances of unaffected faces to their nearest syndrome (e.g. the
            top-1 distance of ranking each unaffected face against this gallery).

    Returns:
        The :class:`Calibration`.

    Raises:
        ValueError: no image has both an own-syndrome (other patient) and an other-syndrome image,
            or ``unaffected`` is not a finite 1-d array.
    """
    emb = gallery.embeddings
    syn = np.asarray(gallery._syndrome_codes)
    sub = np.asarray(gallery._subject_codes)
    n = emb.shape[0]
    own = np.full(n, np.inf)
    other = np.full(n, np.inf)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        dist = cosine_distances(emb[start:stop], emb, image_inv_norms=gallery._inv_norms).mean(
            axis=2
        )
        same_syn = syn[start:stop, None] == syn[None, :]
        same_sub = sub[start:stop, None] == sub[None, :]
        own_d = np.where(same_syn & ~same_sub, dist, np.inf)
        other_d = np.where(~same_syn & ~same_sub, dist, np.inf)
        if own_d.shape[1]:
            own[start:stop] = own_d.min(axis=1)
            other[start:stop] = other_d.min(axis=1)
    has_own = np.isfinite(own)
    counted = has_own & np.isfinite(other)
    if not counted.any():
        raise ValueError(
            f"gallery {gallery.name!r} has no image with both an own-syndrome image of another "
            "patient and an image of another syndrome: nothing to calibrate"
        )
    skipped = sorted({gallery.images[i].syndrome_id for i in np.flatnonzero(~has_own)})
    un = None
    if unaffected is not None:
        arr = np.asarray(unaffected, dtype=np.float64)
        if arr.ndim != 1 or not np.isfinite(arr).all():
            raise ValueError("unaffected must be a 1-d array of finite distances")
        un = _frozen_sorted(arr)
    return Calibration(
        gallery_name=gallery.name,
        own_distances=_frozen_sorted(own[counted]),
        other_distances=_frozen_sorted(other[counted]),
        unaffected_distances=un,
        n_images=int(counted.sum()),
        n_skipped_images=int((~counted).sum()),
        skipped_syndromes=tuple(skipped),
    )


__all__ = ["WILSON_Z_95", "CalibratedMatch", "Calibration", "calibrate", "wilson_interval"]
