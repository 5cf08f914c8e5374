"""Benchmark: deletion AUC, batched metric engine vs a per-image, per-method loop (issue 11).

The demo model and gallery (models/demo), ``--images`` held-out images of the frequent ``test``
split (never in the gallery), each explained against its own syndrome (SimilarityTarget: the
syndrome's nearest gallery image over every gallery variant, re-ranked score) with three batchable
methods. Then deletion curves (most-relevant-first, blur fill, ``--steps`` steps, each perturbed
face re-ranked against the gallery for the true syndrome's rank):

* loop: one :func:`gmx.metrics.faithfulness_curves` call per image and method (one curve, its
  ``steps + 1`` perturbed faces in one forward pass per variant);
* batched: one call for every image and method (perturbed faces of all curves share the passes,
  ``--batch-size`` per pass).

Both run in the same process, alternated ``--repeats`` times; medians are reported, and the AUCs
and ranks of the two must be equal (max absolute difference printed).

    python benchmarks/scorecard.py --quick [--images 5] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmx.aggregate.run import gallery_ensemble
from gmx.config import DEMO_DIR, DEMO_GALLERY, DEMO_MODEL
from gmx.encode import load_model
from gmx.explain import explain
from gmx.gallery import load_gallery
from gmx.metrics import faithfulness_curves
from gmx.metrics.scorecard import syndrome_score_targets as own_targets
from gmx.synth import load_demo_data

log = logging.getLogger("bench")

METHODS = ("saliency", "deeplift", "gradcam")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="deletion AUC only (the only mode so far)")
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    model = load_model(DEMO_MODEL, device="cpu")
    gallery = load_gallery(DEMO_GALLERY)
    data = load_demo_data(DEMO_DIR)
    held = np.flatnonzero((data.splits == "test") & np.isin(data.labels, list(gallery.syndromes)))
    pick = held[: args.images]
    faces = np.ascontiguousarray(data.images[pick])
    labels = [str(s) for s in data.labels[pick]]
    variants = list(gallery.variants)
    emb = gallery_ensemble(model, gallery).embed(faces)
    targets = own_targets(gallery, emb, labels)
    t0 = time.perf_counter()
    maps: dict[str, np.ndarray] = {}
    for m in METHODS:
        rt = [explain(model, faces[i], targets[i], variants, methods=[m])[m].values
              for i in range(len(faces))]  # fmt: skip
        maps[m] = np.stack(rt)
    log.info(
        "%d held-out images, %d variants, methods %s, maps in %.1f s; deletion (most first, blur), "
        "%d steps, re-ranked; %d threads, torch %s",
        len(faces), len(variants), ",".join(METHODS), time.perf_counter() - t0, args.steps,
        args.threads, torch.__version__,
    )  # fmt: skip
    kw = dict(modes=("deletion",), orders=("most",), fills=("blur",), steps=args.steps,
              gallery=gallery)  # fmt: skip

    def loop():
        out = {}
        for i in range(len(faces)):
            for m in METHODS:
                (out[(i, m)],) = faithfulness_curves(
                    model, faces[i : i + 1], {m: maps[m][i : i + 1]}, [targets[i]], variants,
                    syndromes=[labels[i]], batch_size=args.steps + 1, **kw,
                )  # fmt: skip
        return out

    def batched():
        got = faithfulness_curves(
            model, faces, maps, targets, variants, syndromes=labels,
            batch_size=args.batch_size, **kw,
        )  # fmt: skip
        return {(c.face, c.method): c for c in got}

    times: dict[str, list[float]] = {"loop": [], "batched": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("loop", loop), ("batched", batched)):
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    loop_c, batch_c = results["loop"], results["batched"]
    diffs = [abs(loop_c[k].auc - batch_c[k].auc) for k in batch_c]
    rank_same = all(np.array_equal(loop_c[k].ranks, batch_c[k].ranks) for k in batch_c)
    med = {k: statistics.median(v) for k, v in times.items()}
    n_faces = len(results["batched"]) * (args.steps + 1)
    log.info(
        "perturbed faces: loop %d, batched fewer (end points shared per face); x %d variants",
        n_faces, len(variants),
    )  # fmt: skip
    for k in ("loop", "batched"):
        log.info(
            "%-8s median %.2f s  (runs: %s)", k, med[k], ", ".join(f"{t:.2f}" for t in times[k])
        )
    log.info("speed-up batched / loop: %.2fx", med["loop"] / med["batched"])
    log.info("max |AUC loop - AUC batched| = %.2e; ranks equal: %s", max(diffs), rank_same)
    for m in METHODS:
        mine = [c for c in batch_c.values() if c.method == m]
        log.info(
            "%-10s deletion AUC mean %.4f, rank AUC mean %.2f; true rank clean %s -> blurred %s",
            m, float(np.mean([c.auc for c in mine])), float(np.mean([c.rank_auc for c in mine])),
            [int(c.ranks[0]) for c in mine], [int(c.ranks[-1]) for c in mine],
        )  # fmt: skip


if __name__ == "__main__":
    main()
