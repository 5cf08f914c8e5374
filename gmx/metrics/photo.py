"""The scorecard's cheap checks on one photo, on demand (the Explain page, issue 11).

The scorecard judges each method over many held-out faces; a user looking at one photo asks
whether *this* map holds up on *this* face. Two of the scorecard's metrics are cheap enough to run
on demand, and are computed here with the scorecard's own library functions (one implementation):

* **deletion AUC** (:func:`gmx.metrics.faithfulness_curves`, most relevant pixels first, the
  scorecard's default steps and fill) of every shown map, on the target it explains, beside the
  deletion AUC of a seeded random map (:func:`null_map`: the registered ``random`` method's noise)
  on the same face and target, in the same call. ``deletion_vs_random`` (random's AUC minus the
  map's, the scorecard's paired difference) above 0: deleting what this map calls important lowers
  the score faster than deleting random pixels, on this photo.
* the **completeness residual** (:func:`gmx.metrics.method_completeness`) of the methods that claim
  completeness (:data:`gmx.metrics.completeness.COMPLETENESS_METHODS`), on the first model's plain
  input (the promise holds per input, not for the average over variants).

One photo is one sample: a map may beat random here and not on average, or the reverse; the
scorecard's verdicts are the average with confidence intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gmx.constants import TEMPLATE_SIZE
from gmx.encode import Variant
from gmx.explain.targets import Target
from gmx.metrics.completeness import COMPLETENESS_METHODS, Completeness, method_completeness
from gmx.metrics.faithfulness import Fill, faithfulness_curves
from gmx.metrics.scorecard import ScorecardSettings

#: Seed of the random null map (the registered ``random`` method's default seed).
NULL_SEED = 0
#: Steps and fill of the per-photo deletion curves: the scorecard's defaults, so the numbers
#: compare with its leaderboard.
PHOTO_STEPS: int = ScorecardSettings().steps
PHOTO_FILL: Fill = ScorecardSettings().fill
_NULL = "\0random"  # never a registered method's name


def null_map(seed: int = NULL_SEED, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """``(size, size)`` float32 uniform noise in ``[0, 1)``: the registered ``random`` method's map
    (same generator and seed), the null every faithfulness score is compared with."""
    return np.random.default_rng(int(seed)).random((size, size), dtype=np.float32)


@dataclass(frozen=True)
class MapCheck:
    """The per-photo checks of one map (row ``row`` of the call, method ``method``).

    Attributes:
        score: the target's score on the clean face (the curves' first point).
        deletion_auc: area under the map's deletion curve (lower = more faithful).
        random_deletion_auc: the random map's, same face, target, steps and fill.
        deletion: the map's deletion curve (``steps + 1`` scores); random_deletion: random's.
        completeness: the residual, for methods that claim completeness (else ``None``).
    """

    row: int
    method: str
    score: float
    deletion_auc: float
    random_deletion_auc: float
    deletion: tuple[float, ...]
    random_deletion: tuple[float, ...]
    completeness: Completeness | None = None

    @property
    def deletion_vs_random(self) -> float:
        """Random's deletion AUC minus the map's (the scorecard's paired difference; > 0 = the
        map beats random on this photo)."""
        return self.random_deletion_auc - self.deletion_auc

    @property
    def beats_random(self) -> bool:
        return bool(self.deletion_vs_random > 0)


@dataclass(frozen=True)
class PhotoChecks:
    """Every checked map of one photo: :class:`MapCheck` by ``(row, method)``.

    ``fractions``: the x axis of the curves; ``steps``, ``fill``, ``seed``: how they were made.
    """

    checks: Mapping[tuple[int, str], MapCheck]
    fractions: tuple[float, ...]
    steps: int
    fill: str
    seed: int = NULL_SEED
    methods: tuple[str, ...] = field(default=())

    def get(self, row: int, method: str) -> MapCheck | None:
        return self.checks.get((row, method))


def photo_checks(
    models: Any,
    face: np.ndarray,
    targets: Sequence[Target],
    maps: Sequence[Mapping[str, np.ndarray]],
    variants: Sequence[Variant] | None = None,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    steps: int = PHOTO_STEPS,
    fill: Fill = PHOTO_FILL,
    seed: int = NULL_SEED,
    completeness: bool = True,
) -> PhotoChecks:
    """Deletion AUC vs a random map, and completeness, of every map of one face.

    Args:
        models: as :func:`gmx.explain.explain` (the models that made the maps); never modified.
        face: ``(112, 112, 3)`` uint8 aligned face; not modified.
        targets: one target per row (what row ``i``'s maps explain).
        maps: per row, method -> ``(112, 112)`` map on the face.
        variants: the variants the maps averaged over (the score is theirs); default model 0.
        params: method parameters the maps were made with (for the completeness recomputation).
        steps, fill: of the deletion curves (default: the scorecard's).
        seed: of the random null map.
        completeness: also compute the residual of the methods that claim completeness.

    Returns:
        One :class:`MapCheck` per row and method (all rows in one batched curve call).
    """
    if len(maps) != len(targets):
        raise ValueError(f"{len(maps)} rows of maps for {len(targets)} targets")
    img = np.ascontiguousarray(face, np.uint8)
    if img.shape != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3):
        raise ValueError(f"face must be ({TEMPLATE_SIZE}, {TEMPLATE_SIZE}, 3), got {img.shape}")
    methods = tuple(dict.fromkeys(m for row in maps for m in row))
    if _NULL in methods:
        raise ValueError("reserved method name")
    n = len(targets)
    if n == 0 or not methods:
        return PhotoChecks({}, (), steps, fill, seed, methods)
    empty = np.zeros((TEMPLATE_SIZE, TEMPLATE_SIZE), np.float32)
    stacked = {
        m: np.stack([np.asarray(row.get(m, empty), np.float32) for row in maps]) for m in methods
    }
    stacked[_NULL] = np.stack([null_map(seed)] * n)
    curves = faithfulness_curves(
        models, np.stack([img] * n), stacked, list(targets), variants, modes=("deletion",),
        orders=("most",), fills=(fill,), steps=steps,
    )  # fmt: skip
    got = {(c.face, c.method): c for c in curves}
    first = models[0] if isinstance(models, (list, tuple)) else models
    out: dict[tuple[int, str], MapCheck] = {}
    for i, row in enumerate(maps):
        null = got[i, _NULL]
        for m in row:
            c = got[i, m]
            comp = None
            if completeness and m in COMPLETENESS_METHODS:
                comp = method_completeness(first, img, targets[i], m, (params or {}).get(m))
            out[i, m] = MapCheck(
                i, m, float(c.scores[0]), c.auc, null.auc,
                tuple(float(x) for x in c.scores), tuple(float(x) for x in null.scores), comp,
            )  # fmt: skip
    fractions = tuple(float(x) for x in next(iter(curves)).fractions)
    return PhotoChecks(out, fractions, steps, fill, seed, methods)


__all__ = [
    "NULL_SEED",
    "PHOTO_FILL",
    "PHOTO_STEPS",
    "MapCheck",
    "PhotoChecks",
    "null_map",
    "photo_checks",
]
