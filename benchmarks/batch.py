"""Benchmark: batched Grad-CAM family over a gallery vs a naive pytorch-grad-cam loop.

The demo model and gallery (models/demo), every image explained against its own syndrome (cosine
similarity to the nearest other patient of the syndrome, variant 0), the four CAMs Grad-CAM, HiResCAM,
Grad-CAM++ and LayerCAM at the same layer (the ``forward_maps`` output):

* naive: one pytorch-grad-cam call per image and method (gmx.explain.reference's adapters: a forward
  and a backward pass each, library hooks, min-max scaled 112x112 output);
* batched: :func:`gmx.aggregate.batch_maps` (:func:`gmx.explain.explain_batch`, the registered
  methods): one forward and one backward per batch serve all four.

Both run in the same process, interleaved (naive, batched, naive, ...) ``--repeats`` times on the same
fixed random subset (the naive loop over all 1150 images is too slow on a shared 2-core box); medians
are reported. Maps are compared after putting the batched raw maps through pytorch-grad-cam's
post-processing (ReLU, bilinear resize to 112x112, min-max scaling): max absolute difference on the
``[0, 1]`` scale must be below ``--tolerance``.

    python benchmarks/batch.py [--subset 40] [--repeats 3] [--threads 2] [--batch-size 32]
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

from gmx.aggregate import batch_maps, own_syndrome_targets, to_template
from gmx.config import DEMO_DIR, DEMO_MODEL
from gmx.encode import load_model
from gmx.explain import reference as ref
from gmx.explain.prepared import reference_model
from gmx.explain.reference import ReferenceContext
from gmx.gallery import load_gallery
from gmx.variants import Variant

log = logging.getLogger("bench")

CAMS = ("gradcam", "hirescam", "gradcam_plusplus", "layercam")
ADAPTERS = {
    "gradcam": ref.gradcam,
    "hirescam": ref.hirescam,
    "gradcam_plusplus": ref.gradcam_plusplus,
    "layercam": ref.layercam,
}
PARAMS = {"layer": "maps", "relu": True}


def naive(model, faces, targets) -> dict[str, np.ndarray]:
    """One pytorch-grad-cam call per image and method."""
    rmodel = reference_model(model.model.backbone, model.model.classifier)
    out = {m: np.zeros((len(faces), 112, 112), np.float32) for m in CAMS}
    from gmx.explain import variant_input

    with rmodel.lock:
        for i, face in enumerate(faces):
            x = variant_input(face, Variant(0), model.card).to(rmodel.device)
            fn = targets.take([i]).target().bind(0, rmodel.classifier)
            ctx = ReferenceContext(model=rmodel, x=x, targets=(fn,))
            for m in CAMS:
                out[m][i] = ADAPTERS[m](ctx, PARAMS)[0].numpy()
    return out


def batched(model, faces, targets, batch_size: int) -> dict[str, np.ndarray]:
    return batch_maps(model, faces, targets, methods=CAMS, batch_size=batch_size)


def grad_cam_postprocess(raw: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's output from a raw (ReLU'd) 7x7 CAM: resize to 112, min-max to [0, 1]."""
    up = np.maximum(to_template(np.maximum(raw, 0)), 0)
    up = up - up.min()
    return up / (1e-7 + up.max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=40, help="images (0 = the whole gallery)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)

    model = load_model(DEMO_MODEL, device="cpu")
    gallery = load_gallery(DEMO_DIR / "gallery.sqlite")
    n_all = len(gallery.images)
    rng = np.random.default_rng(args.seed)
    idx = (
        np.arange(n_all)
        if args.subset in (0, n_all)
        else np.sort(rng.choice(n_all, args.subset, replace=False))
    )
    targets = own_syndrome_targets(gallery, idx, "similarity")
    keep = np.flatnonzero(targets.valid)
    idx, targets = idx[keep], targets.take(keep)
    faces = np.asarray(gallery.photos[idx])
    log.info(
        "%d images (random subset of %d, seed %d), 4 CAMs, %d threads, torch %s",
        len(idx),
        n_all,
        args.seed,
        args.threads,
        torch.__version__,
    )
    batched(model, faces[:2], targets.take([0, 1]), args.batch_size)  # build engine copy
    naive(model, faces[:1], targets.take([0]))  # build reference copy

    t_naive, t_batch = [], []
    for r in range(args.repeats):
        s = time.perf_counter()
        nv = naive(model, faces, targets)
        t_naive.append(time.perf_counter() - s)
        s = time.perf_counter()
        bt = batched(model, faces, targets, args.batch_size)
        t_batch.append(time.perf_counter() - s)
        log.info("repeat %d: naive %.2f s, batched %.2f s", r, t_naive[-1], t_batch[-1])
    worst = {}
    for m in CAMS:
        diffs = [np.abs(grad_cam_postprocess(bt[m][i]) - nv[m][i]).max() for i in range(len(idx))]
        worst[m] = float(np.max(diffs))
    n = len(idx)
    ips_naive = n / statistics.median(t_naive)
    ips_batch = n / statistics.median(t_batch)
    log.info("naive   (pytorch-grad-cam, 1 call per image x method): %.1f images/s", ips_naive)
    log.info(
        "batched (gmx.aggregate.batch_maps, batch %d):        %.1f images/s",
        args.batch_size,
        ips_batch,
    )
    log.info(
        "ratio: %.1fx (medians of %d interleaved repeats)", ips_batch / ips_naive, args.repeats
    )
    for m in CAMS:
        log.info("max |batched - naive| %-17s %.2e (tolerance %.0e)", m, worst[m], args.tolerance)
    ok = all(v <= args.tolerance for v in worst.values()) and ips_batch >= 3 * ips_naive
    log.info("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
