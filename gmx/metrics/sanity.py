"""Model parameter randomisation test (MPRT; Adebayo et al. 2018), cascading, for iResNets.

A map that explains the model must change when the model's learned weights are replaced by random
ones. Cascading randomisation re-initialises the iResNet from the top down, one stage more at each
step (:data:`IRESNET_STAGES`: the head ``bn2 -> fc -> features``, then ``layer4`` ... ``layer1``,
then the stem), and compares each map with the original: Spearman rank correlation, SSIM and HOG
similarity (each map rescaled to ``[0, 1]`` by its own range), and optionally to an edge map. High similarity after randomisation means the method
does not depend on what the model learned (Guided Backprop and edge detectors are the classic
failures). Null: the similarity of two unrelated maps (about 0); a map independent of the weights
stays at 1.

:func:`randomized_stages` is a context manager that re-initialises the named stages *in place*
(each module's own ``reset_parameters`` under a seeded generator; BatchNorm becomes the identity)
and restores every parameter and buffer bit-exactly on exit, exceptions included. The model is
shared state while inside it: use a private copy where other threads use the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import nn

#: Stages in cascading order (top = output first).
IRESNET_STAGES: tuple[str, ...] = ("head", "layer4", "layer3", "layer2", "layer1", "stem")
#: SSIM window (skimage's default; smaller maps use their odd side).
SSIM_WINDOW = 7
#: HOG descriptor of a map (skimage.feature.hog): orientations, cell side (px), block side (cells).
HOG_ORIENTATIONS = 9
HOG_CELL = 16
HOG_BLOCK = 2
#: A map passes the randomisation test when its Spearman to the original, averaged over the
#: steps, is below this (the scorecard's rule on the upper 95 % bound; docs/metrics.md).
SANITY_MAX_SPEARMAN = 0.5
_STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "head": ("bn2", "fc", "features"),
    "layer4": ("layer4",),
    "layer3": ("layer3",),
    "layer2": ("layer2",),
    "layer1": ("layer1",),
    "stem": ("conv1", "bn1", "prelu"),
}


def stage_modules(backbone: nn.Module, stage: str) -> list[nn.Module]:
    """The modules of one iResNet stage (see :data:`IRESNET_STAGES`)."""
    if stage not in _STAGE_MODULES:
        raise ValueError(f"stage must be one of {IRESNET_STAGES}, got {stage!r}")
    missing = [n for n in _STAGE_MODULES[stage] if not hasattr(backbone, n)]
    if missing:
        raise ValueError(f"{type(backbone).__name__} has no {missing}: not an iResNet")
    return [getattr(backbone, n) for n in _STAGE_MODULES[stage]]


@contextmanager
def randomized_stages(
    backbone: nn.Module, stages: Sequence[str], *, seed: int = 0
) -> Iterator[nn.Module]:
    """Re-initialise ``stages`` of ``backbone`` in place; restore every tensor bit-exactly on exit.

    Yields the (same) backbone. Deterministic for a given ``seed``.
    """
    modules = [m for s in stages for top in stage_modules(backbone, s) for m in top.modules()]
    saved = [
        (t, t.detach().clone())
        for m in modules
        for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))
    ]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in modules:
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
        yield backbone
    finally:
        with torch.no_grad():
            for t, copy in saved:
                t.copy_(copy)


def cascading_steps(stages: Sequence[str] = IRESNET_STAGES) -> list[tuple[str, ...]]:
    """The stage sets of cascading randomisation: ``stages[:1], stages[:2], ...``."""
    return [tuple(stages[: k + 1]) for k in range(len(stages))]


def independent_steps(stages: Sequence[str] = IRESNET_STAGES) -> list[tuple[str, ...]]:
    """The stage sets of independent randomisation: one stage at a time."""
    return [(s,) for s in stages]


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)


def map_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman rank correlation and SSIM of two ``(H, W)`` maps (NaN Spearman for a constant map)."""
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"maps must be the same (H, W), got {x.shape} and {y.shape}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        rho = float("nan")
    else:
        rho = float(spearmanr(x.ravel(), y.ravel()).statistic)
    side = min(SSIM_WINDOW, *x.shape)
    win = side if side % 2 else side - 1  # skimage needs an odd window within the map
    if win < 3:
        raise ValueError(f"maps of shape {x.shape} are too small for SSIM")
    ssim = float(structural_similarity(_unit(x), _unit(y), data_range=1.0, win_size=win))
    return rho, ssim


def hog_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the HOG descriptors of two ``(H, W)`` maps (Adebayo et al. 2018's
    HOG similarity), each map rescaled to ``[0, 1]`` by its own range first.

    NaN when a descriptor is constant (e.g. a constant map).
    """
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"maps must be the same (H, W), got {x.shape} and {y.shape}")
    cell = min(HOG_CELL, min(x.shape) // HOG_BLOCK)
    if cell < 1:
        raise ValueError(f"maps of shape {x.shape} are too small for HOG")
    kw = dict(
        orientations=HOG_ORIENTATIONS, pixels_per_cell=(cell, cell),
        cells_per_block=(HOG_BLOCK, HOG_BLOCK), feature_vector=True,
    )  # fmt: skip
    hx, hy = hog(_unit(x), **kw), hog(_unit(y), **kw)
    if np.ptp(hx) == 0 or np.ptp(hy) == 0:
        return float("nan")
    return float(np.corrcoef(hx, hy)[0, 1])


@dataclass(frozen=True)
class MapSimilarity:
    """Spearman rank correlation, SSIM and HOG similarity of two maps (1 = the same map)."""

    spearman: float
    ssim: float
    hog: float


def map_similarities(a: np.ndarray, b: np.ndarray) -> MapSimilarity:
    """:func:`map_similarity` (Spearman, SSIM) and :func:`hog_similarity` of two maps."""
    rho, ssim = map_similarity(a, b)
    return MapSimilarity(rho, ssim, hog_similarity(a, b))


@dataclass(frozen=True)
class MPRTStep:
    """One step: the stages randomised so far and the map's similarity to the original
    (``spearman``, ``ssim``, ``hog``) and, when :func:`mprt` got a ``baseline`` map (the edge
    detector's), to that baseline (``baseline``; ``None`` without one)."""

    stages: tuple[str, ...]
    spearman: float
    ssim: float
    hog: float = float("nan")
    baseline: MapSimilarity | None = None


@dataclass(frozen=True)
class MPRTResult:
    """Randomisation of one map: ``steps`` in order (cascading: one more stage per step)."""

    steps: tuple[MPRTStep, ...]
    #: the original map's similarity to the baseline map (``None`` without one)
    original_baseline: MapSimilarity | None = None

    @property
    def final_spearman(self) -> float:
        """Spearman after every stage is randomised (near 0 passes, near 1 fails)."""
        return self.steps[-1].spearman

    @property
    def mean_spearman(self) -> float:
        """Spearman to the original averaged over the steps (the scorecard's per-face score)."""
        return float(np.mean([s.spearman for s in self.steps]))

    def passes(self, max_spearman: float = SANITY_MAX_SPEARMAN) -> bool:
        """This one map's sanity: :attr:`mean_spearman` below ``max_spearman`` (the scorecard
        applies the same line to the upper bound of the 95 % interval over faces)."""
        return bool(self.mean_spearman < max_spearman)


def mprt(
    backbone: nn.Module,
    explain_map: Callable[[], np.ndarray],
    *,
    stages: Sequence[str] = IRESNET_STAGES,
    seed: int = 0,
    cascading: bool = True,
    baseline: np.ndarray | None = None,
) -> MPRTResult:
    """MPRT: ``explain_map()`` on the model, then after each randomisation step.

    Args:
        backbone: the iResNet ``explain_map`` uses; randomised in place and restored bit-exactly.
        explain_map: computes the ``(H, W)`` map with the model's current weights.
        stages: cascading order (default :data:`IRESNET_STAGES`).
        seed: of the re-initialisation.
        cascading: ``True``: top-down cascade (:func:`cascading_steps`); ``False``: each stage
            alone, the others as trained (:func:`independent_steps`).
        baseline: a map that ignores the model (the edge detector's, ``edges`` in the registry);
            each randomised map is also compared with it (Adebayo et al.: randomised gradient
            maps come to look like edge maps).
    """
    original = np.array(explain_map(), np.float64)
    base = None if baseline is None else np.asarray(baseline, np.float64)
    steps = []
    for chosen in (cascading_steps if cascading else independent_steps)(stages):
        with randomized_stages(backbone, chosen, seed=seed):
            m = np.array(explain_map(), np.float64)
        sim = map_similarities(original, m)
        to_base = None if base is None else map_similarities(base, m)
        steps.append(MPRTStep(chosen, sim.spearman, sim.ssim, sim.hog, to_base))
    return MPRTResult(tuple(steps), None if base is None else map_similarities(base, original))


__all__ = [
    "HOG_CELL",
    "IRESNET_STAGES",
    "SANITY_MAX_SPEARMAN",
    "MPRTResult",
    "MPRTStep",
    "MapSimilarity",
    "cascading_steps",
    "hog_similarity",
    "independent_steps",
    "map_similarities",
    "map_similarity",
    "mprt",
    "randomized_stages",
    "stage_modules",
]
