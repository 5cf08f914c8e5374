"""Pair-map faithfulness on the demo (thesis 6.4.3): the Similarity page's four pair methods
scored by deletion and insertion on the pair's similarity, on the query and on the gallery face.

For each of ``--queries`` held-out demo test faces (one per syndrome, the scorecard's order), the
pair is the face and its nearest gallery image of its own syndrome; every pair method
(exact decomposition, pair HiResCAM, pair Grad-CAM, pair occlusion) makes its two maps, and
:func:`gmx.metrics.pairs.pair_faithfulness` runs the curves (``--steps``, blur fill) with a seeded
random map as the null. Prints a markdown table (mean over the queries of the AUC differences to
the random map) and writes the mean curves as a figure.

    python benchmarks/pair_faithfulness.py --queries 3 --figure docs/pair_faithfulness.png
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gmx.aggregate.run import gallery_ensemble
from gmx.config import DEMO_DIR, DEMO_GALLERY, DEMO_MODEL
from gmx.encode import load_model
from gmx.gallery import load_gallery
from gmx.metrics.pairs import PairFaithfulness, nearest_own_image, pair_faithfulness
from gmx.metrics.scorecard import held_out_rows
from gmx.similarity import PAIR_METHODS, PairExplainer
from gmx.synth import load_demo_data

log = logging.getLogger("gmx")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    gallery = load_gallery(DEMO_GALLERY)
    ens = gallery_ensemble(load_model(DEMO_MODEL, device="cpu"), gallery)
    explainer = PairExplainer(ens, gallery)
    data = load_demo_data(DEMO_DIR)
    rows = held_out_rows(data.labels, data.splits, data.image_ids, gallery, n_images=args.queries)
    start = time.perf_counter()
    results = []
    for r in rows:
        face = data.images[r]
        q = explainer.query(face)
        best = nearest_own_image(q.embeddings, gallery, str(data.labels[r]))
        pairs = [
            p for m in PAIR_METHODS for p in explainer.explain(face, [best], method=m, query=q)
        ]
        results.extend(pair_faithfulness(ens, gallery, face, pairs, steps=args.steps))
        log.info(
            "query %s: nearest %s, %.1f s", data.image_ids[r], best, time.perf_counter() - start
        )
    print(f"{len(rows)} queries, {time.perf_counter() - start:.0f} s (2-core loaded CPU)\n")
    print("| method | side | deletion AUC | random | deletion_vs_random | insertion AUC | random "
          "| insertion_vs_random |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in PAIR_METHODS:
        for side in ("query", "gallery"):
            got = [x for x in results if x.method == m and x.side == side]
            if not got:
                continue

            def mean(f: Callable[[PairFaithfulness], float], got: list = got) -> float:
                return float(np.mean([f(x) for x in got]))

            print(
                f"| {PAIR_METHODS[m]} | {side} | {mean(lambda x: x.deletion.auc):.3f} | "
                f"{mean(lambda x: x.random_deletion.auc):.3f} | "
                f"{mean(lambda x: x.deletion_vs_random):+.3f} | "
                f"{mean(lambda x: x.insertion.auc):.3f} | "
                f"{mean(lambda x: x.random_insertion.auc):.3f} | "
                f"{mean(lambda x: x.insertion_vs_random):+.3f} |"
            )
    if args.figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True)
        for row, side in enumerate(("query", "gallery")):
            for col, mode in enumerate(("deletion", "insertion")):
                ax = axes[row, col]
                for m in PAIR_METHODS:
                    got = [x for x in results if x.method == m and x.side == side]
                    ys = np.mean([getattr(x, mode).scores for x in got], axis=0)
                    ax.plot(got[0].deletion.fractions, ys, marker="o", ms=3, label=PAIR_METHODS[m])
                rand = [x for x in results if x.side == side]
                ys = np.mean([getattr(x, f"random_{mode}").scores for x in rand], axis=0)
                ax.plot(rand[0].deletion.fractions, ys, "k--", label="random map")
                ax.set_title(f"{mode}, {side} face perturbed", fontsize=10)
                ax.set_xlabel("fraction of pixels (most relevant first)")
                ax.set_ylabel("pair similarity")
        axes[0, 0].legend(fontsize=8)
        fig.suptitle(f"Pair-map faithfulness on the demo ({len(rows)} queries, blur fill)")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=90)


if __name__ == "__main__":
    main()
