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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gmx.encode import Ensemble
from gmx.explain import SimilarityTarget
from gmx.gallery import Gallery, rank
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


# ----------------------------------------------------------------- pair rows of the scorecard
#: The pair metrics of the scorecard table, per side (``<metric>_<side>``), and their direction.
PAIR_METRICS: Mapping[str, tuple[str, str]] = {
    "deletion_auc": ("-", "area under the pair similarity's deletion curve"),
    "insertion_auc": ("+", "area under the pair similarity's insertion curve"),
    "deletion_vs_random": ("+", "random map's deletion AUC minus this map's (paired)"),
    "insertion_vs_random": ("+", "this map's insertion AUC minus the random map's (paired)"),
}
#: Method names of pair rows in the scorecard table: ``pair_<method>`` (never a registry name).
PAIR_PREFIX = "pair_"
#: Key of the pair rows in a scorecard's ``extra``.
PAIRS_KEY = "pairs"


def _value(r: PairFaithfulness, metric: str) -> float:
    return float(getattr(r, metric) if "vs_random" in metric else getattr(r, metric[:-4]).auc)


def nearest_own_image(query: np.ndarray, gallery: Gallery, syndrome: str) -> int:
    """The gallery image of ``syndrome`` nearest to the query's ``(V, D)`` embeddings (the pair
    the scorecard and the benchmark score: GestaltMatcher's distance, every variant).

    Raises:
        ValueError: if the gallery has no image of ``syndrome``.
    """
    syn = np.array([im.syndrome_id for im in gallery.images])
    if not (syn == syndrome).any():
        raise ValueError(f"the gallery has no image of {syndrome!r}")
    dist = np.asarray(rank(query, gallery).image_distances, np.float64).copy()
    dist[syn != syndrome] = np.inf
    return int(np.argmin(dist))


@dataclass(frozen=True)
class PairTable:
    """Pair-map faithfulness over many pairs, summarised like the scorecard.

    Attributes:
        methods: the pair methods (:data:`gmx.similarity.PAIR_METHODS` keys), in run order.
        sides: the faces perturbed.
        table: ``pair_<method>`` -> ``<metric>_<side>`` -> mean with its bootstrap 95 % interval.
        n_pairs: pairs scored; settings: steps, fill, seed, n_boot, image ids.
    """

    methods: tuple[str, ...]
    sides: tuple[str, ...]
    table: Mapping[str, Mapping[str, Any]]
    n_pairs: int
    settings: Mapping[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        """Rows in the scorecard CSV's columns (method, metric, mean, ci_low, ci_high, n, better)."""
        out = []
        for m, metrics in self.table.items():
            for name, got in metrics.items():
                better = PAIR_METRICS[name.rsplit("_", 1)[0]][0]
                out.append({"method": m, "metric": name, "mean": got.mean, "ci_low": got.ci_low,
                            "ci_high": got.ci_high, "n": got.n, "better": better})  # fmt: skip
        return out

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        return {
            "methods": list(self.methods),
            "sides": list(self.sides),
            "n_pairs": self.n_pairs,
            "settings": dict(self.settings),
            "table": {
                m: {
                    k: {"mean": num(v.mean), "ci": [num(v.ci_low), num(v.ci_high)], "n": v.n}
                    for k, v in metrics.items()
                }
                for m, metrics in self.table.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairTable:
        from gmx.metrics.scorecard import MetricSummary

        def num(x: float | None) -> float:
            return float("nan") if x is None else float(x)

        try:
            table = {
                m: {k: MetricSummary(num(v["mean"]), num(v["ci"][0]), num(v["ci"][1]), int(v["n"]))
                    for k, v in metrics.items()}
                for m, metrics in data["table"].items()
            }  # fmt: skip
            return cls(tuple(data["methods"]), tuple(data["sides"]), table,
                       int(data["n_pairs"]), dict(data.get("settings", {})))  # fmt: skip
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed pair table ({type(exc).__name__}: {exc})") from exc


def summarize_pairs(
    results: Sequence[PairFaithfulness],
    *,
    n_boot: int = 1000,
    seed: int = NULL_SEED,
    settings: Mapping[str, Any] | None = None,
) -> PairTable:
    """Mean and bootstrap 95 % interval (:func:`gmx.metrics.scorecard.bootstrap_mean`, the
    scorecard's) of every :data:`PAIR_METRICS` per method and side, over the pairs."""
    from gmx.metrics.scorecard import bootstrap_mean

    methods = tuple(dict.fromkeys(r.method for r in results))
    sides = tuple(dict.fromkeys(r.side for r in results))
    table: dict[str, dict[str, Any]] = {}
    for m in methods:
        table[PAIR_PREFIX + m] = {
            f"{metric}_{side}": bootstrap_mean(
                np.array([_value(r, metric) for r in results if r.method == m and r.side == side]),
                n_boot=n_boot,
                seed=seed,
            )
            for side in sides
            for metric in PAIR_METRICS
        }
    n_pairs = len(results) // max(1, len(methods) * len(sides))  # one result per method and side
    return PairTable(methods, sides, table, n_pairs, dict(settings or {}))


def score_pairs(
    explainer: Any,
    faces: np.ndarray,
    labels: Sequence[str],
    *,
    methods: Sequence[str] | None = None,
    steps: int = 10,
    fill: Fill = "blur",
    seed: int = NULL_SEED,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[PairFaithfulness, ...]:
    """Pair-map faithfulness of held-out ``faces``, each paired with the nearest gallery image of
    its own syndrome (:func:`nearest_own_image`), for every pair method.

    Args:
        explainer: a :class:`gmx.similarity.PairExplainer` (its ensemble and gallery).
        faces: ``(n, 112, 112, 3)`` uint8 aligned faces; labels: their syndromes.
        methods: pair methods (default every :data:`gmx.similarity.PAIR_METHODS` one).
        steps, fill, seed: of the curves and the random null (:func:`pair_faithfulness`).
        progress: called with (faces done, faces) after each face.
    """
    from gmx.similarity import PAIR_METHODS

    chosen = tuple(methods or PAIR_METHODS)
    gallery = explainer.gallery
    sides: tuple[Side, ...] = ("query", "gallery") if gallery.photos is not None else ("query",)
    out: list[PairFaithfulness] = []
    for i, (face, label) in enumerate(zip(faces, labels, strict=True)):
        q = explainer.query(face)
        best = nearest_own_image(q.embeddings, gallery, str(label))
        pairs = [p for m in chosen for p in explainer.explain(face, [best], method=m, query=q)]
        out.extend(
            pair_faithfulness(
                explainer.ensemble,
                gallery,
                face,
                pairs,
                steps=steps,
                fill=fill,
                sides=sides,
                seed=seed,
            )
        )
        if progress is not None:
            progress(i + 1, len(faces))
    return tuple(out)


def with_pair_rows(card: Mapping[str, Any], table: PairTable) -> dict[str, Any]:
    """A scorecard's JSON with the pair rows under ``extra["pairs"]`` (replacing earlier ones)."""
    data = dict(card)
    data["extra"] = {**dict(data.get("extra", {})), PAIRS_KEY: table.to_json()}
    return data


def pair_table(card: Any) -> PairTable | None:
    """The pair rows a :class:`~gmx.metrics.scorecard.Scorecard` carries (``None``: none)."""
    got = card.extra.get(PAIRS_KEY)
    return None if got is None else PairTable.from_json(got)


__all__ = [
    "NULL_SEED",
    "PAIRS_KEY",
    "PAIR_METRICS",
    "PAIR_PREFIX",
    "PairFaithfulness",
    "PairTable",
    "nearest_own_image",
    "pair_faithfulness",
    "pair_table",
    "score_pairs",
    "summarize_pairs",
    "with_pair_rows",
]
