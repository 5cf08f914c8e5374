"""Per-row targets for batch explanation: each image explained against its own syndrome.

A batch holds many *different* faces, each with its own target, so the target is a row-wise score
``(n, D) embeddings -> (n,)`` where row ``i`` uses row ``i``'s reference: :meth:`RowTargets.target`
gives the engine's :class:`gmx.explain.RowTarget`. Because the engine's model is
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

from gmx.explain.targets import RowTarget
from gmx.gallery import Gallery, cosine_distances

TargetMode = Literal["similarity", "logit", "auto"]
TARGET_MODES: tuple[str, ...] = ("similarity", "logit", "auto")


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

    def target(self) -> RowTarget:
        """These rows as one :class:`gmx.explain.RowTarget` (row ``i`` against its own target).

        Raises:
            ValueError: if a row is invalid (take the valid rows first).
        """
        if not self.valid.all():
            raise ValueError(
                f"rows {np.flatnonzero(~self.valid).tolist()} have no target; take the valid rows"
            )
        return RowTarget(self.reference, self.class_index, self.descriptions)


def _mean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` cosine distance averaged over variants of ``a (n, V, D)`` and ``b (m, V, D)``.

    :func:`gmx.gallery.cosine_distances` (float64, as :func:`gmx.gallery.rank` averages it).
    """
    return cosine_distances(np.asarray(a, np.float64), np.asarray(b, np.float64)).mean(axis=-1)


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
        dist = _mean_distance(emb[idx[rows]], emb[members])
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
        best = members[np.argmin(_mean_distance(emb, gallery.embeddings[members]), axis=1)]
        ref_index[:] = best
        reference[:] = gallery.embeddings[best][:, var]
        valid[:] = True
        desc = f"similarity to nearest {syndrome_id} image"
    return RowTargets(class_index, reference, ref_index, valid, (desc,) * n)


__all__ = [
    "TARGET_MODES",
    "RowTargets",
    "TargetMode",
    "own_syndrome_targets",
    "syndrome_targets",
]
