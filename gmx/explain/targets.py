"""What to explain: small callables mapping an embedding to one score per batch row.

A target is separate from the method ("how to explain"), like pytorch-grad-cam's
``ClassifierOutputTarget``. The engine explains several model/TTA *variants* of one face and averages
their maps, so a target is first *bound* to a variant (its gallery row, its model's classifier):

    fn = target.bind(variant_index, classifier)   # fn: (N, D) embedding -> (N,) scores

Scores are differentiable torch functions; nothing here normalises or detaches. A bound target scores
rows independently (the engine's models are in eval mode), so one backward pass over a batch of faces
gives every face's own gradient: :class:`RowTarget` scores row ``i`` against its own reference, for
:func:`gmx.explain.explain_batch`. A score that needs every variant at once (the syndrome's re-ranked
score, a maximum over its images of the mean over variants) is :meth:`Target.ranking_score`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

TargetFn = Callable[[torch.Tensor], torch.Tensor]
"""A bound target: ``(N, D)`` float embedding -> ``(N,)`` scores."""

#: ``eps`` of the cosine similarity (as ``torch.nn.functional.cosine_similarity``).
COSINE_EPS = 1e-8

#: Attribute set on a bound target whose score of row ``i`` depends on embedding row ``i`` only, not
#: on the other rows or their number (:func:`rowwise`).
ROWWISE = "gmx_rowwise"


def rowwise(fn: TargetFn) -> TargetFn:
    """Mark a bound target as row-wise: DeepLIFT's head integral
    (:func:`gmx.explain.workspace.path_gradient`) may then score all its quadrature nodes in one
    call instead of one call per node. Returns ``fn``."""
    setattr(fn, ROWWISE, True)
    return fn


def is_rowwise(fn: TargetFn) -> bool:
    """Whether ``fn`` was marked with :func:`rowwise`."""
    return bool(getattr(fn, ROWWISE, False))


def stacked(fns: Sequence[TargetFn], rows: int) -> TargetFn:
    """One bound target over ``len(fns)`` stacked blocks of ``rows`` embedding rows each: block ``g``
    (rows ``g * rows`` to ``(g + 1) * rows - 1``) is scored by ``fns[g]``, e.g. the TTA variants of
    one model explained in one batch (:func:`gmx.explain.engine._variant_maps`). Each ``fns[g]``
    sees exactly the rows it would see alone, in order; the result is row-wise if every ``fns[g]`` is,
    and then also accepts a multiple of the stacked rows (DeepLIFT's head integral calls it on
    ``steps`` such stacks at once, node-major). One function: returned as it is.

    Raises:
        ValueError: for no functions or ``rows < 1``.
    """
    fns = tuple(fns)
    if not fns or rows < 1:
        raise ValueError(f"need at least one target and rows >= 1, got {len(fns)} and {rows}")
    if len(fns) == 1:
        return fns[0]
    blocks = len(fns)

    def score(embedding: torch.Tensor) -> torch.Tensor:
        dim = embedding.shape[-1]
        parts = embedding.reshape(-1, blocks, rows, dim)
        scores = [fn(parts[:, g].reshape(-1, dim)).reshape(-1, rows) for g, fn in enumerate(fns)]
        return torch.stack(scores, dim=1).reshape(-1)

    return rowwise(score) if all(is_rowwise(fn) for fn in fns) else score


def _embedding_array(value: npt.ArrayLike | torch.Tensor, name: str) -> np.ndarray:
    """A private float32 copy of embeddings, checked for NaN/inf and zero rows."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.array(value, dtype=np.float32)  # private copy
    if arr.size == 0:
        raise ValueError(f"{name} is empty, shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contain NaN or inf")
    norms = np.linalg.norm(arr, axis=-1)
    if np.any(norms == 0):
        raise ValueError(f"{name} rows {np.argwhere(norms == 0).tolist()} are zero")
    return arr


def cosine_score(embedding: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Differentiable cosine similarity ``(N,)`` of ``(N, D)`` embeddings to ``(N, D)`` or ``(1, D)``.

    The score every similarity target explains (GestaltMatcher-Arc ranks by ``1 - cosine``; the
    NumPy distances of a whole gallery are :func:`gmx.gallery.cosine_distances`).

    Raises:
        ValueError: if the embedding dimensions differ.
    """
    ref = reference.to(device=embedding.device, dtype=embedding.dtype)
    if embedding.shape[-1] != ref.shape[-1]:
        raise ValueError(
            f"embedding dimension {embedding.shape[-1]} != gallery dimension {ref.shape[-1]}"
        )
    return F.cosine_similarity(embedding, ref, dim=1, eps=COSINE_EPS)


def logit_score(
    classifier: nn.Module, embedding: torch.Tensor, class_index: int | torch.Tensor
) -> torch.Tensor:
    """Logit ``(N,)`` of class ``class_index`` (an int, or one ``(N,)`` index per row).

    Raises:
        ValueError: if an index is out of range for the classifier.
    """
    logits = classifier(embedding)
    if isinstance(class_index, int):
        k = torch.full((logits.shape[0],), class_index, dtype=torch.int64, device=logits.device)
    else:
        k = class_index.to(device=logits.device, dtype=torch.int64).expand(logits.shape[0])
    if k.numel() and int(k.max()) >= logits.shape[-1]:
        raise ValueError(f"class_index {int(k.max())} out of range for {logits.shape[-1]} classes")
    return logits.gather(1, k[:, None])[:, 0]


class Target(ABC):
    """Base class of everything the engine can explain."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Short human-readable description, shown next to the maps."""

    @abstractmethod
    def bind(self, variant: int, classifier: nn.Module | None = None) -> TargetFn:
        """The score function for one variant.

        Args:
            variant: index of the variant in the ``variants`` passed to the engine.
            classifier: the classifier of that variant's model, if it has one.
        """

    def ranking_score(
        self,
        embeddings: Sequence[torch.Tensor],
        classifiers: Sequence[nn.Module | None] | None = None,
    ) -> torch.Tensor:
        """The score of inputs from *every* variant's embeddings at once: ``(N,)``.

        By default the mean over variants of the bound scores (what the engine's variant average
        explains). :class:`SimilarityTarget` with ``syndrome_embeddings`` overrides it with
        GestaltMatcher's re-ranked syndrome score; re-ranked occlusion (``rerank=True``) explains
        this function.

        Args:
            embeddings: ``(N, D)`` embeddings of the same ``N`` inputs, one tensor per variant in the
                order of the ``variants`` given to the engine.
            classifiers: the classifier of each variant's model (``None`` entries allowed).
        """
        if not embeddings:
            raise ValueError("need the embeddings of at least one variant")
        clfs = list(classifiers) if classifiers is not None else [None] * len(embeddings)
        if len(clfs) != len(embeddings):
            raise ValueError(f"{len(clfs)} classifiers for {len(embeddings)} variants")
        scores = [self.bind(v, c)(e) for v, (e, c) in enumerate(zip(embeddings, clfs, strict=True))]
        return torch.stack(scores).mean(dim=0)

    def __call__(
        self, embedding: torch.Tensor, variant: int = 0, classifier: nn.Module | None = None
    ) -> torch.Tensor:
        """Scores ``(N,)`` of embeddings ``(N, D)`` for one variant."""
        return self.bind(variant, classifier)(embedding)


class SimilarityTarget(Target):
    """Cosine similarity of the face to one gallery image (GestaltMatcher-Arc's score).

    GestaltMatcher-Arc ranks by the cosine distance averaged over model/TTA variants, and a syndrome's
    score is its nearest gallery image. Pass that image's embeddings, one row per variant *in the
    order of the ``variants`` given to the engine*; the engine explains each variant against its own
    row and averages the maps; for the methods whose maps are positively homogeneous in the target
    that explains the mean similarity (``1 - mean distance``), see docs/explain.md.

    The nearest image is fixed at the unperturbed input. Under a large perturbation (an occlusion
    window) another image of the same syndrome may become the nearest, and GestaltMatcher's answer,
    the syndrome's score, is then the *maximum* over the syndrome's images of the mean similarity.
    Pass all of the syndrome's images as ``syndrome_embeddings`` to make :meth:`ranking_score` that
    re-ranked score (used by occlusion with ``rerank=True``); gradient methods are unaffected (the
    maximum is locally the nearest image).

    Args:
        gallery_embeddings: ``(V, D)`` float embeddings of the nearest gallery image of the syndrome
            (raw or L2-normalised; cosine makes that irrelevant), or ``(D,)`` for a single variant.
        label: what the image stands for, e.g. ``"Cornelia de Lange (nearest image 1234)"``.
        syndrome_embeddings: ``(G, V, D)`` embeddings of every gallery image of the syndrome (the
            nearest one included), variants as in ``gallery_embeddings``; ``None``: no re-ranking.
    """

    def __init__(
        self,
        gallery_embeddings: npt.ArrayLike | torch.Tensor,
        label: str = "",
        *,
        syndrome_embeddings: npt.ArrayLike | torch.Tensor | None = None,
    ) -> None:
        arr = _embedding_array(gallery_embeddings, "gallery_embeddings")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"gallery_embeddings must be (V, D) or (D,), got shape {arr.shape}")
        arr.setflags(write=False)
        self._gallery = arr
        self._label = label
        self._syndrome: np.ndarray | None = None
        if syndrome_embeddings is not None:
            syn = _embedding_array(syndrome_embeddings, "syndrome_embeddings")
            if syn.ndim == 2 and arr.shape[0] == 1:
                syn = syn[:, None, :]
            if syn.ndim != 3 or syn.shape[0] < 1 or syn.shape[1:] != arr.shape:
                raise ValueError(
                    f"syndrome_embeddings must be (G, {arr.shape[0]}, {arr.shape[1]}) like the "
                    f"gallery rows, got shape {syn.shape}"
                )
            syn.setflags(write=False)
            self._syndrome = syn

    @property
    def gallery_embeddings(self) -> np.ndarray:
        """Read-only ``(V, D)`` float32 copy of the gallery rows."""
        return self._gallery

    @property
    def syndrome_embeddings(self) -> np.ndarray | None:
        """Read-only ``(G, V, D)`` float32 copy of the syndrome's images, or ``None``."""
        return self._syndrome

    def ranking_score(
        self,
        embeddings: Sequence[torch.Tensor],
        classifiers: Sequence[nn.Module | None] | None = None,
    ) -> torch.Tensor:
        """Without ``syndrome_embeddings`` the mean similarity over variants; with them the
        re-ranked syndrome score ``max_g mean_v cos(e_v, g_v)`` (GestaltMatcher-Arc's answer)."""
        if self._syndrome is None:
            return super().ranking_score(embeddings, classifiers)
        if len(embeddings) != self._syndrome.shape[1]:
            raise ValueError(
                f"{len(embeddings)} variants' embeddings for a target with "
                f"{self._syndrome.shape[1]} variant row(s)"
            )
        total = None
        for v, e in enumerate(embeddings):
            g = torch.from_numpy(self._syndrome[:, v].copy()).to(device=e.device, dtype=e.dtype)
            if e.shape[-1] != g.shape[-1]:
                raise ValueError(
                    f"embedding dimension {e.shape[-1]} != gallery dimension {g.shape[-1]}"
                )
            sim = F.cosine_similarity(e[:, None, :], g[None, :, :], dim=2, eps=COSINE_EPS)
            total = sim if total is None else total + sim
        assert total is not None
        return (total / len(embeddings)).amax(dim=1)

    @property
    def description(self) -> str:
        name = self._label or "gallery image"
        return f"cosine similarity to {name}"

    def bind(self, variant: int, classifier: nn.Module | None = None) -> TargetFn:
        if not 0 <= variant < self._gallery.shape[0]:
            raise ValueError(
                f"variant {variant} has no gallery row: SimilarityTarget holds "
                f"{self._gallery.shape[0]} row(s), one per variant explained"
            )
        row = torch.from_numpy(self._gallery[variant].copy())

        def score(embedding: torch.Tensor) -> torch.Tensor:
            return cosine_score(embedding, row[None, :])

        return rowwise(score)  # one fixed gallery row: each embedding row is scored alone

    def __repr__(self) -> str:
        return f"SimilarityTarget(V={self._gallery.shape[0]}, D={self._gallery.shape[1]}, label={self._label!r})"


class LogitTarget(Target):
    """The classifier logit of one class (needs a model with a classifier).

    Args:
        class_index: index into the classifier output.
        label: class name for the description.
    """

    def __init__(self, class_index: int, label: str = "") -> None:
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)):
            raise ValueError(f"class_index must be an int, got {class_index!r}")
        if class_index < 0:
            raise ValueError(f"class_index must be >= 0, got {class_index}")
        self.class_index = int(class_index)
        self._label = label

    @property
    def description(self) -> str:
        name = self._label or f"class {self.class_index}"
        return f"logit of {name}"

    def bind(self, variant: int, classifier: nn.Module | None = None) -> TargetFn:
        if classifier is None:
            raise ValueError(
                f"LogitTarget({self.class_index}) needs a classifier, but variant {variant}'s model "
                "has none (e.g. the raw Glint360K model): explain a SimilarityTarget instead"
            )
        k = self.class_index

        def score(embedding: torch.Tensor) -> torch.Tensor:
            return logit_score(classifier, embedding, k)

        return score

    def __repr__(self) -> str:
        return f"LogitTarget({self.class_index}, label={self._label!r})"


class ContrastTarget(Target):
    """``score(a) - score(b)``: why syndrome *a* rather than *b* (e.g. two ``SimilarityTarget``).

    Args:
        a: the target whose evidence counts positive.
        b: the target whose evidence counts negative.
    """

    def __init__(self, a: Target, b: Target) -> None:
        if not isinstance(a, Target) or not isinstance(b, Target):
            raise ValueError(f"ContrastTarget needs two Targets, got {a!r} and {b!r}")
        self.a = a
        self.b = b

    @property
    def description(self) -> str:
        return f"({self.a.description}) minus ({self.b.description})"

    def bind(self, variant: int, classifier: nn.Module | None = None) -> TargetFn:
        fa = self.a.bind(variant, classifier)
        fb = self.b.bind(variant, classifier)

        def score(embedding: torch.Tensor) -> torch.Tensor:
            return fa(embedding) - fb(embedding)

        return score

    def ranking_score(
        self,
        embeddings: Sequence[torch.Tensor],
        classifiers: Sequence[nn.Module | None] | None = None,
    ) -> torch.Tensor:
        """``a.ranking_score - b.ranking_score`` (each re-ranked if it can be)."""
        return self.a.ranking_score(embeddings, classifiers) - self.b.ranking_score(
            embeddings, classifiers
        )

    def __repr__(self) -> str:
        return f"ContrastTarget({self.a!r}, {self.b!r})"


class RowTarget(Target):
    """One target per input row: row ``i`` is explained against its own reference or class.

    For a batch of *different* faces (:func:`gmx.explain.explain_batch`): each face against the
    nearest image of its own syndrome, say. Row ``i`` scores like ``SimilarityTarget(references[i])``
    (``class_index[i] < 0``) or ``LogitTarget(class_index[i])``; a one-row target scores every row
    against that row (as the two single targets do).

    Args:
        references: ``(n, V, D)`` float reference embeddings, one row per explained variant in the
            order of the ``variants`` given to the engine (ignored, may be zero, for logit rows).
        class_index: ``(n,)`` int classifier index per row, ``-1`` for a similarity row; default all
            similarity.
        descriptions: ``n`` short descriptions (default: generic ones).
    """

    def __init__(
        self,
        references: npt.ArrayLike,
        class_index: npt.ArrayLike | None = None,
        descriptions: Sequence[str] | None = None,
    ) -> None:
        ref = np.array(references, dtype=np.float32)  # private copy
        if ref.ndim != 3 or min(ref.shape) < 1:
            raise ValueError(f"references must be (n, V, D), got shape {ref.shape}")
        n = ref.shape[0]
        cls = np.full(n, -1, np.int64) if class_index is None else np.array(class_index, np.int64)
        if cls.shape != (n,):
            raise ValueError(f"class_index must be ({n},), got shape {cls.shape}")
        sim = cls < 0
        if not np.all(np.isfinite(ref[sim])):
            raise ValueError("references contain NaN or inf")
        zero = np.flatnonzero(sim & np.any(np.linalg.norm(ref, axis=2) == 0, axis=1))
        if zero.size:
            raise ValueError(f"similarity rows {zero.tolist()} have a zero reference")
        if descriptions is not None and len(descriptions) != n:
            raise ValueError(f"{len(descriptions)} descriptions for {n} rows")
        ref.setflags(write=False)
        cls.setflags(write=False)
        self._references = ref
        self._class_index = cls
        self._descriptions = tuple(descriptions) if descriptions is not None else None

    def __len__(self) -> int:
        return self._references.shape[0]

    @property
    def references(self) -> np.ndarray:
        """Read-only ``(n, V, D)`` float32 reference embeddings."""
        return self._references

    @property
    def class_index(self) -> np.ndarray:
        """Read-only ``(n,)`` int64 classifier indices (``-1``: similarity row)."""
        return self._class_index

    @property
    def description(self) -> str:
        if self._descriptions is not None and len(set(self._descriptions)) == 1:
            return self._descriptions[0]
        return f"one target per face ({len(self)} faces)"

    def bind(self, variant: int, classifier: nn.Module | None = None) -> TargetFn:
        if not 0 <= variant < self._references.shape[1]:
            raise ValueError(
                f"variant {variant} has no reference row: RowTarget holds "
                f"{self._references.shape[1]} row(s) per face, one per variant explained"
            )
        is_logit = torch.from_numpy(self._class_index >= 0)
        any_logit = bool(is_logit.any())
        if any_logit and classifier is None:
            raise ValueError(
                f"RowTarget has logit rows but variant {variant}'s model has no classifier"
            )
        ref = torch.from_numpy(self._references[:, variant].copy())
        cls = torch.from_numpy(self._class_index.clip(min=0))
        n = len(self)

        def score(embedding: torch.Tensor) -> torch.Tensor:
            if n != 1 and embedding.shape[0] != n:
                raise ValueError(f"{embedding.shape[0]} embeddings for {n} target rows")
            sim = cosine_score(embedding, ref)
            if not any_logit:
                return sim
            picked = logit_score(classifier, embedding, cls)  # type: ignore[arg-type]
            return torch.where(is_logit.to(embedding.device), picked, sim)

        return score

    def __repr__(self) -> str:
        n, v, d = self._references.shape
        return f"RowTarget(n={n}, V={v}, D={d}, logit_rows={int((self._class_index >= 0).sum())})"


__all__ = [
    "COSINE_EPS",
    "ContrastTarget",
    "LogitTarget",
    "RowTarget",
    "SimilarityTarget",
    "Target",
    "TargetFn",
    "cosine_score",
    "is_rowwise",
    "logit_score",
    "rowwise",
    "stacked",
]
