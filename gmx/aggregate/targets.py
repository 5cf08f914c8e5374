"""Per-row targets for batch explanation: each image explained against its own syndrome.

A batch holds many *different* faces, each with its own target, so the target is a row-wise score
``(n, D) embeddings -> (n,)`` where row ``i`` uses row ``i``'s reference. Because the engine's model is
in eval mode (BatchNorm uses running statistics), rows never interact: the gradient of the summed
scores with respect to row ``i`` is the gradient of row ``i``'s own score, so one backward pass over
the batch gives every image's map exactly as a one-image call would.

Target kinds (``mode``):

* ``"similarity"`` (default): cosine similarity to the nearest OTHER gallery image of the image's own
  syndrome, excluding every image of the same subject (a patient's other photos would make the target
  trivial). "Nearest" is by cosine distance averaged over the gallery's variants, exactly as
  GestaltMatcher-Arc ranks. This is the model's real score and exists for every syndrome with at
  least two subjects (rare ones included).
* ``"logit"``: the classifier logit of the image's label; only for syndromes the classifier has.
* ``"auto"``: the logit where the classifier has the class, else the similarity.

Rows without a usable target (a syndrome with a single subject under ``"similarity"``, an unknown
class under ``"logit"``) are marked invalid and skipped by the batch runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gmx.gallery import Gallery

TargetMode = Literal["similarity", "logit", "auto"]
TARGET_MODES: tuple[str, ...] = ("similarity", "logit", "auto")

#: ``eps`` of the cosine (as :mod:`gmx.explain.targets`).
_EPS = 1e-8


@dataclass(frozen=True, eq=False)
class RowTargets:
    """What each of ``n`` rows is explained against.

    Attributes:
        class_index: ``(n,)`` int64 classifier index of a logit target, ``-1`` for a similarity row.
        reference: ``(n, V, D)`` float32 reference embeddings of similarity rows (one row per
            explained variant, in the order of the variants given to the batch), zeros for logit
            rows and invalid rows.
        reference_index: ``(n,)`` int64 gallery index of each row's reference image, ``-1`` if none.
        valid: ``(n,)`` bool: the row has a target.
        descriptions: ``n`` short strings ("logit of SYN:0001", "similarity to gallery image 12").
    """

    class_index: np.ndarray
    reference: np.ndarray
    reference_index: np.ndarray
    valid: np.ndarray
    descriptions: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.class_index)
        if self.reference.ndim != 3 or self.reference.shape[0] != n:
            raise ValueError(f"reference must be (n, V, D) with n={n}, got {self.reference.shape}")
        if len(self.reference_index) != n or len(self.valid) != n or len(self.descriptions) != n:
            raise ValueError("RowTargets fields disagree in length")
        for name in ("class_index", "reference", "reference_index", "valid"):
            arr = np.array(getattr(self, name), copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.class_index)

    def take(self, rows: Sequence[int] | np.ndarray) -> RowTargets:
        """The targets of ``rows`` (indices), as a new value."""
        idx = np.asarray(rows, dtype=np.int64)
        return RowTargets(
            self.class_index[idx],
            self.reference[idx],
            self.reference_index[idx],
            self.valid[idx],
            tuple(self.descriptions[i] for i in idx),
        )

    def bind(self, variant: int, classifier: nn.Module | None, device: torch.device):
        """Row-wise score ``(n, D) -> (n,)`` for explained variant number ``variant``.

        Raises:
            ValueError: if a row needs a classifier and ``classifier`` is ``None``.
        """
        cls = torch.tensor(self.class_index, device=device)
        is_logit = cls >= 0
        if bool(is_logit.any()) and classifier is None:
            raise ValueError("logit targets need a model with a classifier")
        ref = torch.tensor(np.array(self.reference[:, variant]), device=device)

        def score(emb: torch.Tensor) -> torch.Tensor:
            if emb.shape[0] != ref.shape[0]:
                raise ValueError(f"{emb.shape[0]} embeddings for {ref.shape[0]} target rows")
            sim = F.cosine_similarity(emb, ref.to(emb.dtype), dim=1, eps=_EPS)
            if not bool(is_logit.any()):
                return sim
            logits = classifier(emb)  # type: ignore[misc]
            picked = logits.gather(1, cls.clamp_min(0)[:, None])[:, 0]
            return torch.where(is_logit, picked, sim)

        return score


def _unit(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


def mean_cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` cosine distance averaged over variants of ``a (n, V, D)`` and ``b (m, V, D)``."""
    ua, ub = _unit(a), _unit(b)
    return 1.0 - np.einsum("nvd,mvd->nm", ua, ub) / a.shape[1]


def _class_lookup(classes: Sequence[str] | None) -> dict[str, int]:
    return {c: i for i, c in enumerate(classes or ())}


def own_syndrome_targets(
    gallery: Gallery,
    indices: Sequence[int] | np.ndarray,
    mode: TargetMode = "similarity",
    *,
    classes: Sequence[str] | None = None,
    variants: Sequence[int] | None = None,
) -> RowTargets:
    """Targets of gallery images ``indices``: each explained against its own syndrome.

    Args:
        gallery: the gallery (embeddings ``(N, V, D)``).
        indices: gallery rows to explain.
        mode: ``"similarity"``, ``"logit"`` or ``"auto"`` (see the module docstring).
        classes: the classifier's class ids in index order (``ModelCard.classes``); needed for logits.
        variants: gallery variant indices explained (reference rows in this order); default ``[0]``.

    Raises:
        ValueError: for an unknown mode, bad indices or variants.
    """
    if mode not in TARGET_MODES:
        raise ValueError(f"mode must be one of {TARGET_MODES}, got {mode!r}")
    idx = np.asarray(indices, dtype=np.int64)
    n_all = len(gallery.images)
    if idx.size and (idx.min() < 0 or idx.max() >= n_all):
        raise ValueError(f"indices out of range for a gallery of {n_all} images")
    var = np.asarray([0] if variants is None else list(variants), dtype=np.int64)
    if var.size == 0 or var.min() < 0 or var.max() >= len(gallery.variants):
        raise ValueError(
            f"variants {var.tolist()} out of range ({len(gallery.variants)} in gallery)"
        )
    lookup = _class_lookup(classes)
    labels = np.array([im.syndrome_id for im in gallery.images])
    subjects = np.array([im.subject_id for im in gallery.images])
    emb = gallery.embeddings
    d = emb.shape[-1]
    n = len(idx)
    class_index = np.full(n, -1, np.int64)
    reference = np.zeros((n, len(var), d), np.float32)
    ref_index = np.full(n, -1, np.int64)
    valid = np.zeros(n, bool)
    desc: list[str] = []
    for syn in np.unique(labels[idx]) if n else ():
        rows = np.flatnonzero(labels[idx] == syn)
        members = np.flatnonzero(labels == syn)
        use_logit = mode == "logit" or (mode == "auto" and syn in lookup)
        if use_logit:
            if syn in lookup:
                class_index[rows] = lookup[syn]
                valid[rows] = True
            continue
        dist = mean_cosine_distance(emb[idx[rows]], emb[members])
        same_subject = subjects[idx[rows]][:, None] == subjects[members][None, :]
        dist[same_subject] = np.inf
        best = np.argmin(dist, axis=1)
        ok = np.isfinite(dist[np.arange(len(rows)), best])
        ref_index[rows[ok]] = members[best[ok]]
        reference[rows[ok]] = emb[members[best[ok]]][:, var]
        valid[rows[ok]] = True
    for i in range(n):
        syn = labels[idx[i]]
        if not valid[i]:
            desc.append(f"no target for {syn}")
        elif class_index[i] >= 0:
            desc.append(f"logit of {syn}")
        else:
            desc.append(f"similarity to {gallery.images[ref_index[i]].image_id} ({syn})")
    return RowTargets(class_index, reference, ref_index, valid, tuple(desc))


def syndrome_targets(
    gallery: Gallery,
    embeddings: np.ndarray,
    syndrome_id: str,
    mode: TargetMode = "similarity",
    *,
    classes: Sequence[str] | None = None,
    variants: Sequence[int] | None = None,
) -> RowTargets:
    """Targets of outside faces (e.g. the unaffected cohort) against one syndrome.

    Args:
        gallery: the gallery.
        embeddings: ``(n, V, D)`` embeddings of the faces (same variants as the gallery).
        syndrome_id: the syndrome every row is explained against (its nearest gallery image, or
            its logit).
        mode, classes, variants: as :func:`own_syndrome_targets`.

    Raises:
        ValueError: for an unknown syndrome or mode, or embeddings that do not fit the gallery.
    """
    if mode not in TARGET_MODES:
        raise ValueError(f"mode must be one of {TARGET_MODES}, got {mode!r}")
    emb = np.asarray(embeddings, np.float32)
    if emb.ndim != 3 or emb.shape[1:] != gallery.embeddings.shape[1:]:
        raise ValueError(
            f"embeddings must be (n, {gallery.embeddings.shape[1]}, {gallery.embeddings.shape[2]}), "
            f"got {emb.shape}"
        )
    labels = np.array([im.syndrome_id for im in gallery.images])
    members = np.flatnonzero(labels == syndrome_id)
    if members.size == 0:
        raise ValueError(f"syndrome {syndrome_id!r} has no gallery images")
    var = np.asarray([0] if variants is None else list(variants), dtype=np.int64)
    lookup = _class_lookup(classes)
    n = len(emb)
    class_index = np.full(n, -1, np.int64)
    reference = np.zeros((n, len(var), emb.shape[-1]), np.float32)
    ref_index = np.full(n, -1, np.int64)
    valid = np.zeros(n, bool)
    use_logit = mode == "logit" or (mode == "auto" and syndrome_id in lookup)
    if use_logit:
        if syndrome_id in lookup:
            class_index[:] = lookup[syndrome_id]
            valid[:] = True
        desc = f"logit of {syndrome_id}"
    else:
        best = members[np.argmin(mean_cosine_distance(emb, gallery.embeddings[members]), axis=1)]
        ref_index[:] = best
        reference[:] = gallery.embeddings[best][:, var]
        valid[:] = True
        desc = f"similarity to nearest {syndrome_id} image"
    return RowTargets(class_index, reference, ref_index, valid, (desc,) * n)


__all__ = [
    "TARGET_MODES",
    "RowTargets",
    "TargetMode",
    "mean_cosine_distance",
    "own_syndrome_targets",
    "syndrome_targets",
]
