"""Does the label leak outside the ground-truth masks? A linear pixel probe with a permutation null.

The demo's masks claim to cover every pixel whose distribution depends on the syndrome. This module
tests that claim on a :class:`~gmx.synth.dataset.DemoData`:

1. **Union mask.** A template pixel is *masked* when it lies in at least ``min_fraction`` (0.5 %) of
   the affected images' masks (every image not of the unaffected cohort, all splits). The masked
   pixels are greyed out (set to mid-grey) in every image, patients and controls alike.
2. **Features.** The greyed images are block-averaged by ``factor`` (4: 28 x 28 x RGB) and every
   feature is standardised on the training rows.
3. **Probe.** A class-balanced ridge classifier (one-vs-rest least squares on one-hot targets
   divided by the class size and centred, so every class weighs the same; solved in the dual)
   trained on the frequent ``train`` + ``val`` images; scored by macro top-1 (mean per-class
   recall) on the subject-disjoint frequent ``test`` images.
4. **Null.** The same probe retrained after permuting the labels *between training subjects*
   (all images of a subject keep one label), ``permutations`` times: the chance distribution of
   macro top-1 for this data, class sizes and test set.

Without the grey-out the probe reads the features themselves, so it must reach far above the null;
with it, a probe within the null means no linearly readable label signal is left outside the masks.
Only numpy; the kernel matrix is decomposed once per call, so a few hundred permutations take seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gmx.synth.dataset import DemoData
from gmx.synth.syndromes import UNAFFECTED

#: Pixels in at least this fraction of the affected images' masks are greyed out.
MIN_MASK_FRACTION = 0.005
#: Block-averaging factor of the 112 x 112 images (4 -> 28 x 28 x 3 features).
FACTOR = 4
#: Ridge penalty relative to the mean diagonal of the training kernel.
RIDGE = 1.0
#: Splits the probe trains on and tests on.
TRAIN_SPLITS = ("train", "val")
TEST_SPLIT = "test"


@dataclass(frozen=True)
class ProbeResult:
    """Macro top-1 of a pixel probe and its permutation null.

    Attributes:
        accuracy: macro top-1 on the test images (mean per-class recall).
        recall: syndrome id -> recall on the test images.
        null: macro top-1 of every label-permuted probe, sorted ascending.
        masked_fraction: fraction of template pixels greyed out (0 without the grey-out).
        n_features: probe features.
        n_train, n_test: images the probe was trained and scored on.
    """

    accuracy: float
    recall: Mapping[str, float]
    null: tuple[float, ...]
    masked_fraction: float
    n_features: int
    n_train: int
    n_test: int

    @property
    def chance(self) -> float:
        """Mean macro top-1 of the permuted probes."""
        return float(np.mean(self.null))

    def chance_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Central ``level`` interval of the permutation null."""
        tail = (1.0 - level) / 2.0
        lo, hi = np.quantile(np.asarray(self.null), [tail, 1.0 - tail])
        return float(lo), float(hi)

    @property
    def p_value(self) -> float:
        """One-sided permutation p-value of ``accuracy``: ``(1 + #{null >= accuracy}) / (1 + n)``."""
        null = np.asarray(self.null)
        return float((1 + np.sum(null >= self.accuracy)) / (1 + len(null)))


def union_mask(data: DemoData, min_fraction: float = MIN_MASK_FRACTION) -> np.ndarray:
    """``(112, 112)`` bool: pixels in at least ``min_fraction`` of the affected images' masks."""
    affected = np.asarray(data.labels) != UNAFFECTED.syndrome_id
    if not affected.any():
        raise ValueError("the data hold no affected image")
    return data.masks[affected].mean(axis=0) >= min_fraction


def pixel_features(
    images: np.ndarray, grey: np.ndarray | None = None, factor: int = FACTOR
) -> np.ndarray:
    """Block-averaged pixels in [0, 1], ``(N, (112 / factor)^2 * 3)`` float64.

    Args:
        images: ``(N, H, W, 3)`` uint8; not modified.
        grey: ``(H, W)`` bool pixels set to mid-grey (0.5) first, or ``None``.
        factor: block side; must divide ``H`` and ``W``.
    """
    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise ValueError(f"factor {factor} does not divide {h}x{w}")
    x = images.astype(np.float64) / 255.0
    if grey is not None:
        x = np.where(np.asarray(grey, bool)[None, :, :, None], 0.5, x)
    x = x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
    return x.reshape(n, -1)


def _macro_recall(pred: np.ndarray, truth: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Recall of every class in ``classes`` (all must occur in ``truth``)."""
    return np.array([np.mean(pred[truth == c] == c) for c in classes])


def ridge_probe(
    features: np.ndarray,
    labels: np.ndarray,
    subjects: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    permutations: int = 100,
    seed: int = 0,
    ridge: float = RIDGE,
) -> tuple[float, dict[str, float], tuple[float, ...]]:
    """Train the balanced ridge classifier on ``train`` rows, score ``test`` rows, and the null.

    Args:
        features: ``(N, D)`` float.
        labels, subjects: ``(N,)`` str; a subject has one label.
        train, test: ``(N,)`` bool row selections (disjoint subjects).
        permutations: label permutations between training subjects for the null.
        seed: seed of the permutations.
        ridge: penalty relative to the mean diagonal of the training kernel.

    Returns:
        Macro top-1, per-class recall, and the sorted null accuracies.
    """
    x_tr, x_te = features[train], features[test]
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
    live = sd > 1e-9
    x_tr = (x_tr[:, live] - mu[live]) / sd[live]
    x_te = (x_te[:, live] - mu[live]) / sd[live]
    k_tr, k_te = x_tr @ x_tr.T, x_te @ x_tr.T
    lam = ridge * float(np.trace(k_tr)) / len(k_tr)
    y_tr, y_te = np.asarray(labels)[train], np.asarray(labels)[test]
    classes = np.unique(y_tr)
    scored = np.intersect1d(classes, y_te)  # macro over the trained classes the test set holds
    if not live.any() or not len(scored):
        raise ValueError(
            "no feature varies on the training rows, or no test row of a trained class"
        )
    # Ridge in the dual: scores = K_te (K + lam I)^-1 T. One eigendecomposition serves every
    # permutation (only the targets T change), so the null costs a matrix product per permutation.
    evals, evecs = np.linalg.eigh(k_tr)
    project = (k_te @ evecs) / (evals + lam)

    def fit_predict(y: np.ndarray) -> np.ndarray:
        # One-vs-rest targets scaled by 1 / class size (every class weighs the same), centred.
        target = (y[:, None] == classes[None, :]).astype(np.float64)
        target /= target.sum(axis=0)
        target -= target.mean(axis=0)
        return classes[np.argmax(project @ (evecs.T @ target), axis=1)]

    recall = _macro_recall(fit_predict(y_tr), y_te, scored)
    # Subject-level permutation: shuffle which label each training subject carries.
    subj = np.asarray(subjects)[train]
    uniq, inv = np.unique(subj, return_inverse=True)
    first = np.zeros(len(uniq), int)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    subject_label = y_tr[first]
    rng = np.random.default_rng(seed)
    null = sorted(
        float(_macro_recall(fit_predict(rng.permutation(subject_label)[inv]), y_te, scored).mean())
        for _ in range(permutations)
    )
    return (
        float(recall.mean()),
        dict(zip(scored.tolist(), recall.tolist(), strict=True)),
        tuple(null),
    )


def mask_probe(
    data: DemoData,
    *,
    grey_out: bool = True,
    min_fraction: float = MIN_MASK_FRACTION,
    factor: int = FACTOR,
    permutations: int = 100,
    seed: int = 0,
    ridge: float = RIDGE,
) -> ProbeResult:
    """The pixel probe on the frequent syndromes of ``data`` (see the module docstring).

    Args:
        data: the demo data (``load_demo_data``).
        grey_out: grey out the union mask (``False``: the probe sees the whole image).
        min_fraction: union-mask rule (:func:`union_mask`).
        factor: block-averaging factor.
        permutations: size of the permutation null.
        seed: seed of the permutations.
        ridge: relative ridge penalty.
    """
    train = np.isin(data.splits, TRAIN_SPLITS)
    test = data.splits == TEST_SPLIT
    if not train.any() or not test.any():
        raise ValueError("the data need train/val and test images of the frequent syndromes")
    grey = union_mask(data, min_fraction) if grey_out else None
    feats = pixel_features(data.images, grey, factor)
    acc, recall, null = ridge_probe(
        feats, data.labels, data.subject_ids, train, test,
        permutations=permutations, seed=seed, ridge=ridge,
    )  # fmt: skip
    return ProbeResult(
        accuracy=acc,
        recall=recall,
        null=null,
        masked_fraction=float(grey.mean()) if grey is not None else 0.0,
        n_features=feats.shape[1],
        n_train=int(train.sum()),
        n_test=int(test.sum()),
    )


__all__ = [
    "FACTOR",
    "MIN_MASK_FRACTION",
    "RIDGE",
    "ProbeResult",
    "mask_probe",
    "pixel_features",
    "ridge_probe",
    "union_mask",
]
