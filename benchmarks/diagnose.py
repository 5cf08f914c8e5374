"""Photo -> top-k latency and peak memory of the diagnose path (issue: foundation, speed section).

Measures, with the models already loaded, the median wall time of decode + detect + landmarks + align
+ encode + rank for one ~1 MP JPEG of a real face (scikit-image's astronaut, upscaled), against a
gallery of the demo's size, for two set-ups:

* ``single``: one iResNet-50, no test-time augmentation;
* ``ensemble``: iResNet-50 + two iResNet-100 (GestaltMatcher-Arc's m0, m1, m2) x 4 TTA variants,
  the TTA variants of each model batched into one forward pass;
* ``ensemble-bf16``: the same with bf16 autocast (``Ensemble(precision="bf16")``).

Weights are random (timing does not depend on them). Each set-up runs in its own process so that its
peak RSS is its own. Usage::

    python benchmarks/diagnose.py [--runs 9] [--gallery-size 1401] [--device cpu]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETUPS = {
    "single": {"depths": [50], "flip": False, "grey": False, "target_s": 0.3, "precision": "fp32"},
    "ensemble": {
        "depths": [50, 100, 100],
        "flip": True,
        "grey": True,
        "target_s": 1.5,
        "precision": "fp32",
    },
    "ensemble-bf16": {
        "depths": [50, 100, 100],
        "flip": True,
        "grey": True,
        "target_s": 1.5,
        "precision": "bf16",
    },
}


def _photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def run_setup(name: str, runs: int, gallery_size: int, device: str) -> dict[str, object]:
    """Time one set-up in this process; returns the figures."""
    import torch

    from gmx.align import FaceAligner
    from gmx.encode import Ensemble, GestaltModel, default_card, iresnet, load_model, save_model
    from gmx.gallery import Gallery, GalleryImage, Syndrome
    from gmx.pipeline import Diagnoser

    spec = SETUPS[name]
    torch.manual_seed(0)
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, depth in enumerate(spec["depths"]):
            module = GestaltModel(iresnet(depth).eval())
            card = default_card(name=f"bench-r{depth}-{i}", architecture=f"iresnet{depth}")
            path = save_model(module, card, Path(tmp) / f"m{i}.pt")
            models.append(load_model(path, device=device))
    ensemble = Ensemble(models, flip=spec["flip"], grey=spec["grey"], precision=spec["precision"])
    rng = np.random.default_rng(0)
    n_syndromes = 15
    gallery = Gallery(
        name="bench",
        version="bench",
        images=tuple(
            GalleryImage(f"i{k}", f"s{k // 2}", f"S{k % n_syndromes}", None)
            for k in range(gallery_size)
        ),
        syndromes=[Syndrome(f"S{j}", f"Syndrome {j}") for j in range(n_syndromes)],
        embeddings=rng.standard_normal(
            (gallery_size, len(ensemble.variants), ensemble.embedding_dim)
        ).astype(np.float32),
        variants=ensemble.variants,
        model_fingerprint=ensemble.fingerprint,
    )
    photo = _photo_bytes()
    steps: dict[str, list[float]] = {}
    totals = []
    with Diagnoser(ensemble, gallery, FaceAligner()) as diagnoser:
        diagnoser.diagnose(photo)  # warm-up (lazy allocations, MediaPipe graph start)
        for _ in range(runs):
            t0 = time.perf_counter()
            d = diagnoser.diagnose(photo)
            totals.append(time.perf_counter() - t0)
            for k, v in d.timings.items():
                steps.setdefault(k, []).append(v)
            if not d.ok:
                raise RuntimeError(f"benchmark photo not diagnosed: {d.message}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "setup": name,
        "precision": spec["precision"],
        "models": [f"iresnet{d}" for d in spec["depths"]],
        "variants": len(ensemble.variants),
        "gallery_images": gallery_size,
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "steps_median_ms": {k: round(1000 * statistics.median(v), 1) for k, v in steps.items()},
        "target_s": spec["target_s"],
        "peak_rss_mb": round(peak_mb),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--gallery-size", type=int, default=1401)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--setup", choices=sorted(SETUPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:  # child process
        result = run_setup(args.setup, args.runs, args.gallery_size, args.device)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    results = []
    for name in SETUPS:
        out = subprocess.run(
            [sys.executable, __file__, "--setup", name, "--runs", str(args.runs),
             "--gallery-size", str(args.gallery_size), "--device", args.device],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"diagnose latency, photo 1024x1024 JPEG, {args.runs} runs, device {args.device}")
    for r in results:
        ok = "meets" if r["median_s"] <= r["target_s"] else "MISSES"
        print(
            f"  {r['setup']:9s} {'+'.join(r['models']):32s} {r['variants']:2d} variants: "
            f"median {r['median_s'] * 1000:7.1f} ms (min {r['min_s'] * 1000:.1f}) "
            f"target {r['target_s'] * 1000:.0f} ms -> {ok}; peak RSS {r['peak_rss_mb']} MB"
        )
        print(f"            steps (median ms): {r['steps_median_ms']}")
    single, ens, ens16 = results
    print(f"  ensemble / single latency ratio: {ens['median_s'] / single['median_s']:.2f}")
    print(f"  ensemble bf16 / fp32 latency ratio: {ens16['median_s'] / ens['median_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
