"""Benchmark: the scorecard's metric engine vs a per-image, per-method loop (issue 11).

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

``--full``: the whole per-face metric set the scorecard computes with forward passes
(:data:`gmx.metrics.scorecard.FORWARD_METRICS`: deletion and insertion curves, most relevant first,
the scorecard's fill, re-ranked; ROAD; captum's infidelity), with the scorecard's own settings
(:class:`~gmx.metrics.scorecard.ScorecardSettings` defaults; ``--steps`` overrides), on the
scorecard's maps (``--methods``) of the same images:

* loop: what the scorecard did per method before the engine shared passes, nothing shared: one
  :func:`gmx.metrics.faithfulness_curves` call per image and method (both curves, one pass per
  variant), one :func:`gmx.metrics.infidelity` call per image and method (its own forward), and
  ROAD once per method over the images (pytorch-grad-cam's call takes the batch; its imputation
  noise is one seeded stream over the batch, so one call per image would draw other noise and
  give other numbers);
* engine: :func:`gmx.metrics.scorecard.forward_metrics`, what ``score_rows`` runs: every curve of
  every image and method in shared passes, ROAD's clean batch once for all methods and
  percentiles, each image's infidelity passes once for all methods.

Alternated ``--repeats`` times in one process (the order flips every repeat), medians; every
value must be equal (the max absolute difference is printed).

    python benchmarks/scorecard.py --quick [--images 5] [--repeats 3] [--threads 2]
    python benchmarks/scorecard.py --full [--images 5] [--repeats 3] [--methods a,b,c]
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
from gmx.explain.engine import as_explain_model, variant_rows
from gmx.gallery import load_gallery
from gmx.metrics import faithfulness_curves, infidelity, similarity_forward
from gmx.metrics.scorecard import (
    FORWARD_METRICS,
    ScorecardSettings,
    _road,
    column,
    forward_metrics,
    scorecard_maps,
)
from gmx.metrics.scorecard import syndrome_score_targets as own_targets
from gmx.synth import load_demo_data

log = logging.getLogger("bench")

METHODS = ("saliency", "deeplift", "gradcam")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="deletion AUC only (the default)")
    mode.add_argument("--full", action="store_true", help="every forward-pass metric of a face")
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="default: 20 (--quick), 10 (--full)")
    ap.add_argument("--methods", default=",".join(METHODS), help="--full: comma-separated")
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
    if args.full:
        full(args, model, gallery, faces, labels, targets)
        return
    args.steps = 20 if args.steps is None else args.steps
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


def full(args: argparse.Namespace, model, gallery, faces, labels, targets) -> None:
    """``--full``: the scorecard's forward-pass metrics, per-image per-method loop vs engine."""
    methods = tuple(m for m in args.methods.split(",") if m)
    steps = {} if args.steps is None else {"steps": args.steps}
    s = ScorecardSettings(methods=methods, **steps).resolved()
    t0 = time.perf_counter()
    maps = scorecard_maps(model, gallery, faces, labels, methods, s.variants)
    n, k = len(faces), len(methods)
    log.info(
        "%d held-out images, %d variants, methods %s, maps in %.1f s; deletion + insertion (most "
        "first, %s), %d steps, re-ranked; ROAD %s; infidelity %d samples; %d threads, torch %s",
        n, len(gallery.variants), ",".join(methods), time.perf_counter() - t0, s.fill, s.steps,
        list(s.road_percentiles), s.infidelity_samples, args.threads, torch.__version__,
    )  # fmt: skip
    pair = as_explain_model(model)
    inputs = variant_rows(faces, gallery.variants[0], pair.card)
    variants = list(gallery.variants)

    def loop() -> dict[str, np.ndarray]:
        out = {column(m, x): np.full(n, np.nan) for m in methods for x in FORWARD_METRICS}
        for i in range(n):
            for m in methods:
                got = faithfulness_curves(
                    model, faces[i : i + 1], {m: maps[m][i : i + 1]}, [targets[i]], variants,
                    modes=("deletion", "insertion"), orders=("most",), fills=(s.fill,),
                    steps=s.steps, gallery=gallery, syndromes=[labels[i]],
                    batch_size=2 * (s.steps + 1),
                )  # fmt: skip
                for c in got:
                    key = column(m, f"{c.mode}_curve")
                    out.setdefault(key, np.full((n, s.steps + 1), np.nan))[i] = c.scores
                    out[column(m, f"{c.mode}_auc")][i] = c.auc
                    out[column(m, f"{c.mode}_rank_auc")][i] = c.rank_auc
                fwd = similarity_forward(model, targets[i], 0)
                inf = infidelity(
                    fwd, inputs[i : i + 1], torch.from_numpy(maps[m][i : i + 1]),
                    n_samples=s.infidelity_samples, seed=s.seed + i,
                )  # fmt: skip
                out[column(m, "infidelity")][i] = float(inf[0])
        for m in methods:
            out[column(m, "road_morf")] = _road(
                pair.backbone, inputs, maps[m], targets, s.road_percentiles, s.seed
            )
        return out

    def engine() -> dict[str, np.ndarray]:
        return forward_metrics(model, gallery, faces, maps, targets, labels, s)

    times: dict[str, list[float]] = {"loop": [], "engine": []}
    results: dict[str, dict[str, np.ndarray]] = {}
    order = (("loop", loop), ("engine", engine))
    for r in range(args.repeats):  # the order flips every repeat: neither always runs first
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
    a, b = results["loop"], results["engine"]
    if a.keys() != b.keys():
        raise RuntimeError(f"loop and engine columns differ: {sorted(a.keys() ^ b.keys())}")
    diff = max(float(np.nanmax(np.abs(a[key] - b[key]), initial=0.0)) for key in a)
    equal = all(np.array_equal(a[key], b[key], equal_nan=True) for key in a)
    med = {name: statistics.median(v) for name, v in times.items()}
    p = len(s.road_percentiles)
    log.info(
        "passes per variant-0 batch: ROAD clean %d (loop) vs 1 (engine); infidelity per image "
        "%d (loop) vs 2 (engine)",
        k * p, 2 * k,
    )  # fmt: skip
    for name in ("loop", "engine"):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        log.info("%-7s median %.2f s  (runs: %s)", name, med[name], runs)
    log.info("speed-up engine / loop: %.2fx", med["loop"] / med["engine"])
    log.info("max |loop - engine| over every value = %.2e; all equal: %s", diff, equal)
    for m in methods:
        log.info(
            "%-10s deletion AUC %.4f, insertion AUC %.4f, ROAD %.4f, infidelity %.3g (means)",
            m, *(float(np.mean(b[column(m, x)]))
                 for x in ("deletion_auc", "insertion_auc", "road_morf", "infidelity")),
        )  # fmt: skip


if __name__ == "__main__":
    main()
