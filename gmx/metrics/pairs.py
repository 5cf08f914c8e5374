"""Faithfulness of pair maps (thesis 6.4.3): the Similarity page's maps scored on the pair's score.

A pair map (:class:`gmx.similarity.PairMaps`: exact decomposition, pair HiResCAM / Grad-CAM, pair
occlusion) explains the similarity of a query face and one gallery image, with one map on each
face. Deletion and insertion (:func:`gmx.metrics.faithfulness_curves`, the same engine as the
scorecard) are run on each side: the query side perturbs the query and scores it against the
gallery image's embeddings, the gallery side perturbs the gallery photo and scores it against the
query's embeddings; both scores are the pair's similarity (mean cosine over the ensemble's
variants, :attr:`PairMaps.score` on the clean faces). A seeded random map on the same faces is the
null (:func:`gmx.metrics.photo.null_map`, the registered ``random`` method's noise), as in the
scorecard: ``deletion_vs_random`` (random's deletion AUC minus the map's) and
``insertion_vs_random`` (the map's insertion AUC minus random's) above 0 = faithful on this pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from gmx.encode import Ensemble
from gmx.explain import SimilarityTarget
from gmx.gallery import Gallery
from gmx.metrics.faithfulness import Fill, PerturbationCurve, faithfulness_curves
from gmx.metrics.photo import NULL_SEED, null_map

if TYPE_CHECKING:
    from gmx.similarity import PairMaps

Side = Literal["query", "gallery"]
_NULL = "random"
_MAP = "map"


@dataclass(frozen=True)
class PairFaithfulness:
    """Deletion and insertion on one side of one pair map, with the random map's on the same face.

    ``score``: the pair's similarity on the clean faces (the curves' start for deletion).
    """

    method: str
    image_index: int
    side: Side
    score: float
    deletion: PerturbationCurve
    insertion: PerturbationCurve
    random_deletion: PerturbationCurve
    random_insertion: PerturbationCurve

    @property
    def deletion_vs_random(self) -> float:
        return self.random_deletion.auc - self.deletion.auc

    @property
    def insertion_vs_random(self) -> float:
        return self.insertion.auc - self.random_insertion.auc


def pair_faithfulness(
    ensemble: Ensemble,
    gallery: Gallery,
    face: np.ndarray,
    pairs: Sequence[PairMaps],
    *,
    steps: int = 10,
    fill: Fill = "blur",
    sides: Sequence[Side] = ("query", "gallery"),
    seed: int = NULL_SEED,
) -> tuple[PairFaithfulness, ...]:
    """Deletion/insertion of every :class:`~gmx.similarity.PairMaps` in ``pairs`` on ``sides``.

    Args:
        ensemble: the models and variants that embedded ``gallery`` (the pair's); not modified.
        gallery: its gallery (the gallery side needs ``gallery.photos``).
        face: the query's ``(112, 112, 3)`` uint8 aligned face.
        pairs: ``PairMaps`` of this query (any methods, any gallery images).
        steps, fill: of the curves (most relevant first).
        sides: which faces are perturbed.
        seed: of the random null map.

    Returns:
        One result per pair and side, in that order.

    Raises:
        ValueError: for the gallery side without gallery photos.
    """
    if "gallery" in sides and gallery.photos is None:
        raise ValueError("the gallery side needs the gallery photos; use sides=('query',)")
    face = np.ascontiguousarray(face, np.uint8)
    q_emb = ensemble.embed(face[None])[0]  # (V, D)
    faces, maps, targets, keys = [], [], [], []
    for p in pairs:
        for side in sides:
            if side == "query":
                faces.append(face)
                maps.append(np.asarray(p.query, np.float32))
                targets.append(SimilarityTarget(gallery.embeddings[p.image_index], "gallery"))
            else:
                faces.append(np.asarray(gallery.photos[p.image_index], np.uint8))
                maps.append(np.asarray(p.gallery, np.float32))
                targets.append(SimilarityTarget(q_emb, "query"))
            keys.append((p, side))
    if not keys:
        return ()
    n = len(keys)
    curves = faithfulness_curves(
        list(ensemble.models), np.stack(faces),
        {_MAP: np.stack(maps), _NULL: np.stack([null_map(seed)] * n)}, targets,
        list(ensemble.variants), modes=("deletion", "insertion"), orders=("most",),
        fills=(fill,), steps=steps,
    )  # fmt: skip
    got = {(c.face, c.method, c.mode): c for c in curves}
    out = []
    for i, (p, side) in enumerate(keys):
        res = PairFaithfulness(
            p.method, int(p.image_index), side, float(p.score),
            got[i, _MAP, "deletion"], got[i, _MAP, "insertion"],
            got[i, _NULL, "deletion"], got[i, _NULL, "insertion"],
        )  # fmt: skip
        out.append(res)
    return tuple(out)


__all__ = ["NULL_SEED", "PairFaithfulness", "pair_faithfulness"]
