"""Syndrome-level statistics of per-image maps: mean, spread, stability, ground-truth agreement.

All functions are pure NumPy on maps in template coordinates (aligned faces, so one pixel is one facial
location for every image). Statistics are computed at the maps' resolution: ``112x112`` for maps from
:func:`~gmx.aggregate.batch.batch_maps`, which places coarse maps on the template with the backbone's
cell grid. :func:`to_template` places any remaining coarse map (e.g. results saved before maps were
placed) for display and for comparison with ``112x112`` masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gmx.constants import TEMPLATE_SIZE
from gmx.encode.geometry import CellGrid, stride_grid
from gmx.explain.compare import pearson


@dataclass(frozen=True, eq=False)
class SyndromeMap:
    """One syndrome's maps for one method.

    Attributes:
        syndrome_id: the syndrome.
        method: registry name.
        mean: ``(h, w)`` float32 mean raw map over the syndrome's images.
        std: ``(h, w)`` float32 standard deviation (population, ``ddof=0``) over the images.
        n_images: images averaged.
        n_patients: distinct subjects among them.
        stability: split-half reliability of the mean map: Pearson r between the mean maps of two
            random halves of the *patients* (all images of a patient in the same half), averaged
            over ``repeats`` splits; NaN with fewer than 4 patients.
        stability_sb: the Spearman-Brown prediction for the full set, ``2r / (1 + r)``.
    """

    syndrome_id: str
    method: str
    mean: np.ndarray
    std: np.ndarray
    n_images: int
    n_patients: int
    stability: float
    stability_sb: float


def split_half(
    maps: np.ndarray, subjects: Sequence[str], *, repeats: int = 20, seed: int = 0
) -> float:
    """Mean Pearson r between the mean maps of two random patient halves.

    Args:
        maps: ``(n, h, w)`` maps of one syndrome.
        subjects: ``n`` subject ids; a subject's images always fall in the same half.
        repeats: random splits averaged.
        seed: of the splits.

    Returns:
        The mean r, NaN with fewer than 4 subjects.
    """
    arr = np.asarray(maps, np.float64)
    subj = np.asarray(subjects)
    if len(arr) != len(subj):
        raise ValueError(f"{len(arr)} maps for {len(subj)} subjects")
    uniq, inverse = np.unique(subj, return_inverse=True)
    if len(uniq) < 4:
        return float("nan")
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(repeats):
        half = rng.permutation(len(uniq)) < len(uniq) // 2
        a = half[inverse]
        r = pearson(arr[a].mean(0), arr[~a].mean(0))
        if np.isfinite(r):
            rs.append(r)
    return float(np.mean(rs)) if rs else float("nan")


def syndrome_map(
    maps: np.ndarray,
    subjects: Sequence[str],
    syndrome_id: str,
    method: str,
    *,
    repeats: int = 20,
    seed: int = 0,
) -> SyndromeMap:
    """Mean, spread and stability of one syndrome's ``(n, h, w)`` maps (NaN rows are dropped).

    Raises:
        ValueError: if no finite map is left.
    """
    arr = np.asarray(maps, np.float32)
    subj = np.asarray(subjects)
    ok = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    if not ok.any():
        raise ValueError(f"no finite maps for {syndrome_id} / {method}")
    arr, subj = arr[ok], subj[ok]
    r = split_half(arr, subj, repeats=repeats, seed=seed)
    sb = 2 * r / (1 + r) if np.isfinite(r) and r > -1 else float("nan")
    return SyndromeMap(
        syndrome_id=syndrome_id,
        method=method,
        mean=arr.mean(0, dtype=np.float64).astype(np.float32),
        std=arr.std(0, dtype=np.float64).astype(np.float32),
        n_images=len(arr),
        n_patients=len(np.unique(subj)),
        stability=r,
        stability_sb=float(sb),
    )


def to_template(
    values: np.ndarray, size: int = TEMPLATE_SIZE, grid: CellGrid | None = None
) -> np.ndarray:
    """``(h, w)`` -> ``(size, size)`` float32 map on the template.

    Args:
        values: a map already at ``size`` (returned as a copy) or a coarse cell map.
        size: template side.
        grid: where the coarse map's cells sit (:func:`gmx.encode.geometry.cell_grid` of the
            backbone that made it). Default: the analytic iResNet centres
            (:func:`~gmx.encode.geometry.stride_grid`, cell ``j`` at ``j * size / h``), which
            ignores the border pull on the outer cells.
    """
    arr = np.asarray(values, np.float32)
    if arr.shape == (size, size):
        return arr.copy()
    if grid is None:
        grid = stride_grid(arr.shape, size)  # type: ignore[arg-type]
    return grid.place(arr)


@dataclass(frozen=True)
class MaskAgreement:
    """Agreement of a map with a known causal region (a boolean mask).

    Attributes:
        mass_inside: fraction of the positive attribution mass inside the mask.
        area_fraction: fraction of the image the mask covers (the chance level of ``mass_inside``).
        enrichment: ``mass_inside / area_fraction`` (1 = chance).
        auroc: area under the ROC curve of the map's values as a score for "pixel in mask"
            (0.5 = chance; ties count half).
    """

    mass_inside: float
    area_fraction: float
    enrichment: float
    auroc: float


def auroc_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``out[i, j]`` = AUROC of ``scores[i]`` for the boolean ``labels[j]`` (Mann-Whitney U over
    ``n_pos * n_neg``, ties averaged): the one AUROC kernel of gmx (:func:`auroc`,
    :func:`gmx.aggregate.localisation.score_matrix`, :func:`gmx.metrics.localisation.auroc`).

    Args:
        scores: ``(k, P)`` scores (each row ranked once for every ``labels`` row).
        labels: ``(S, P)`` bool.

    Returns:
        ``(k, S)`` float64; NaN where ``labels[j]`` has one class only or ``scores[i]`` is not all
        finite.
    """
    m = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    if m.ndim != 2 or y.ndim != 2 or m.shape[1] != y.shape[1]:
        raise ValueError(f"scores (k, P) and labels (S, P) must share P, got {m.shape}, {y.shape}")
    if m.shape[1] == 0:
        return np.full((len(m), len(y)), np.nan)
    bad = ~np.isfinite(m).all(axis=1)
    from scipy.stats import rankdata  # ties averaged

    ranks = rankdata(np.where(bad[:, None], 0.0, m), method="average", axis=1)
    n_pos = y.sum(axis=1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ranks @ y.T.astype(np.float64) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    out[:, (n_pos == 0) | (n_neg == 0)] = np.nan
    out[bad] = np.nan
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of ``scores`` for boolean ``labels`` (Mann-Whitney, ties averaged; :func:`auroc_matrix`);
    NaN if one class or a non-finite score."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels, bool).ravel()
    return float(auroc_matrix(s[None], y[None])[0, 0])


def mask_agreement(values: np.ndarray, mask: np.ndarray) -> MaskAgreement:
    """Agreement of a map (the mask's resolution, or a coarse map placed by :func:`to_template`) with a boolean mask.

    Args:
        values: ``(h, w)`` map; only positive values count as attribution mass.
        mask: ``(H, W)`` bool, square, same template.

    Raises:
        ValueError: for an empty mask or a mask that is not square.
    """
    m = np.asarray(mask, bool)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"mask must be a square 2-D array, got shape {m.shape}")
    if not m.any():
        raise ValueError("mask is empty")
    v = to_template(values, m.shape[0]).astype(np.float64)
    pos = np.clip(v, 0, None)
    total = pos.sum()
    inside = float(pos[m].sum() / total) if total > 0 else float("nan")
    area = float(m.mean())
    return MaskAgreement(inside, area, inside / area, auroc(v, m))


def composite_face_warped(photos: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Shape-normalised composite: warp every face onto the mean landmark shape, then average.

    Piecewise-affine warp (scikit-image) on the given landmarks plus the image corners and edge
    midpoints (so the whole crop is covered).

    Args:
        photos: ``(n, 112, 112, 3)`` uint8 aligned faces.
        landmarks: ``(n, K, 2)`` float ``(x, y)`` template-pixel landmarks of each face (rows with
            NaN are skipped).

    Raises:
        ValueError: for mismatched shapes or no usable face.
    """
    from skimage.transform import PiecewiseAffineTransform, warp

    arr = np.asarray(photos)
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[0] != len(arr) or lm.shape[2] != 2:
        raise ValueError(f"landmarks must be (n, K, 2) for {len(arr)} photos, got {lm.shape}")
    ok = np.isfinite(lm).reshape(len(lm), -1).all(axis=1)
    if not ok.any():
        raise ValueError("no face has landmarks")
    arr, lm = arr[ok], lm[ok]
    h, w = arr.shape[1:3]
    frame = np.array(
        [
            [0, 0],
            [w - 1, 0],
            [0, h - 1],
            [w - 1, h - 1],
            [w / 2, 0],
            [w / 2, h - 1],
            [0, h / 2],
            [w - 1, h / 2],
        ],
        np.float64,
    )
    mean_shape = np.concatenate([lm.mean(0), frame])
    acc = np.zeros((h, w, 3), np.float64)
    for face, pts in zip(arr, lm, strict=True):
        tf = PiecewiseAffineTransform()
        # warp() maps output coords -> input coords: estimate mean shape -> this face.
        if not tf.estimate(mean_shape, np.concatenate([pts, frame])):
            raise ValueError("piecewise-affine estimation failed")
        acc += warp(face, tf, output_shape=(h, w), preserve_range=True, mode="edge")
    return np.clip(np.rint(acc / len(arr)), 0, 255).astype(np.uint8)


__all__ = [
    "MaskAgreement",
    "SyndromeMap",
    "auroc",
    "auroc_matrix",
    "composite_face_warped",
    "mask_agreement",
    "split_half",
    "syndrome_map",
    "to_template",
]
