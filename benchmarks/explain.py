"""Benchmark: gmx.explain's engine vs naive one-call-per-method captum / pytorch-grad-cam.

One photo (scikit-image's astronaut, face cropped to 112x112), a random-init iResNet-50, no TTA, the
thesis panel of nine methods for one target (cosine similarity to a gallery embedding), the SAME
parameters on both sides: occlusion 10x10 black window stride 5, integrated gradients 32 steps.

Prints per-method times, their ratio, agreement (Pearson r, top-10% pixel IoU) of every engine map
with the naive one, the fraction of the FLOP floor achieved, the "fast methods" time for the top-1
and top-5 syndromes, and peak RSS.

    python benchmarks/explain.py [--device cpu|cuda] [--threads N] [--skip-naive] [--no-flops]
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmx.encode import preprocess
from gmx.encode.iresnet import iresnet50
from gmx.explain import (
    THESIS_PANEL,
    SimilarityTarget,
    agreement,
    explain,
    explain_targets,
)
from gmx.explain.prepared import engine_model, reference_model
from gmx.explain.workspace import resolve_precision

log = logging.getLogger("bench")

#: Forward pass of iResNet-50 at 112x112, GFLOP (2 x multiply-accumulates).
FORWARD_GFLOP = 12.6
#: Methods without occlusion and integrated gradients (the "interactive" set).
FAST = tuple(m for m in THESIS_PANEL if m not in ("occlusion", "integrated_gradients"))
PARAMS = {
    "occlusion": {"window": 10, "stride": 5, "fill": "black"},
    "integrated_gradients": {"steps": 32, "baseline": "black"},
    "deeplift": {"baseline": "black"},
}
MIN_R, MIN_IOU = 0.99, 0.9


def astronaut_face() -> np.ndarray:
    import cv2
    from skimage import data

    crop = data.astronaut()[34:177, 150:293]
    return cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def count_flops(fn) -> float:
    """FLOPs of the aten ops torch's flop counter knows (convolutions, matmuls, their backward).

    A bare dispatch mode (``FlopCounterMode`` also tracks modules with global hooks, which breaks
    ``torch.autograd.grad`` on leaves).
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0.0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            if packet in (torch.ops.aten.conv2d, torch.ops.aten.linear):
                # Composite ops reach the mode undecomposed under inference_mode.
                weight = args[1]
                per_output = (
                    weight[0].numel() if packet is torch.ops.aten.conv2d else weight.shape[1]
                )
                Counter.total += 2.0 * out.numel() * per_output
            elif packet in flop_registry:
                Counter.total += float(flop_registry[packet](*args, **kwargs, out_val=out))
            return out

    with Counter():
        fn()
    return Counter.total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="alternate engine and naive runs this many times and keep each one's fastest "
        "(robust on a shared, busy machine)",
    )
    parser.add_argument("--no-flops", action="store_true")
    parser.add_argument("--precision", default="auto", help="occlusion/IG precision")
    parser.add_argument("--peak-fp32", type=float, default=170.0, help="GFLOP/s")
    parser.add_argument("--peak-bf16", type=float, default=360.0, help="GFLOP/s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = print  # the benchmark's job is to print figures

    torch.manual_seed(0)
    model = iresnet50().eval().to(device)
    face = astronaut_face()
    gallery = np.random.default_rng(0).standard_normal((5, 512)).astype(np.float32)
    targets = [SimilarityTarget(gallery[i], f"syndrome {i + 1}") for i in range(5)]
    precision = resolve_precision(args.precision, device)
    params = {k: dict(v) for k, v in PARAMS.items()}
    params["occlusion"]["precision"] = precision
    params["integrated_gradients"]["precision"] = precision
    out(
        f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"occlusion/IG precision {precision}"
    )

    t = time.perf_counter()
    engine_model(model)
    out(f"one-time engine copy of the model: {time.perf_counter() - t:.2f} s")
    # Warm-up (lazy initialisation), not timed.
    explain(model, face, targets[0], methods=FAST, params=params)

    naive: dict[str, float] = {}
    ref_maps = {}
    engine_s: dict[str, float] = {}
    engine_total = top1 = top5 = float("inf")
    fp32 = {k: {**v, "precision": "fp32"} if "precision" in v else v for k, v in params.items()}
    for round_ in range(max(1, args.repeats)):
        # -- engine ---------------------------------------------------------------------------
        sync(device)
        t = time.perf_counter()
        eng = explain(model, face, targets[0], methods=THESIS_PANEL, params=params)
        sync(device)
        total = time.perf_counter() - t
        if total < engine_total:
            engine_total = total
            engine_s = {n: eng[n].elapsed_s for n in THESIS_PANEL}
        t = time.perf_counter()
        explain(model, face, targets[0], methods=FAST, params=params)
        top1 = min(top1, time.perf_counter() - t)
        t = time.perf_counter()
        explain_targets(model, face, targets, methods=FAST, params=params)
        top5 = min(top5, time.perf_counter() - t)
        if round_ == 0:
            rss_engine = rss_mb()
            if device.type == "cuda":
                mb = torch.cuda.max_memory_allocated(device) / 2**20
                out(f"peak CUDA memory (engine): {mb:.0f} MB")
        # -- naive ----------------------------------------------------------------------------
        if args.skip_naive:
            continue
        if round_ == 0:
            t = time.perf_counter()
            reference_model(model)
            out(f"one-time reference copy of the model: {time.perf_counter() - t:.2f} s")
            # Warm-up (library imports), not timed.
            explain(model, face, targets[0], methods=["gradcam", "saliency"], backend="reference")
        for name in THESIS_PANEL:
            sync(device)
            t = time.perf_counter()
            ref_maps[name] = explain(
                model,
                face,
                targets[0],
                methods=[name],
                params={name: fp32.get(name, {})},
                backend="reference",
            )[name]
            sync(device)
            naive[name] = min(naive.get(name, float("inf")), time.perf_counter() - t)

    # -- report --------------------------------------------------------------------------------
    out("")
    out(f"{'method':22s} {'naive s':>9s} {'engine s':>9s} {'ratio':>7s} {'r':>8s} {'IoU10%':>7s}")
    ok = True
    for name in THESIS_PANEL:
        e = max(engine_s[name], 1e-6)
        if naive:
            agree = agreement(eng[name].values, ref_maps[name].values)
            good = agree.pearson >= MIN_R and agree.top_iou >= MIN_IOU
            ok &= good
            out(
                f"{name:22s} {naive[name]:9.3f} {e:9.3f} {naive[name] / e:7.1f} "
                f"{agree.pearson:8.5f} {agree.top_iou:7.3f}{'' if good else '  <-- FAIL'}"
            )
        else:
            out(f"{name:22s} {'-':>9s} {e:9.3f}")
    if naive:
        naive_total = sum(naive.values())
        out(
            f"{'TOTAL':22s} {naive_total:9.3f} {engine_total:9.3f} {naive_total / engine_total:7.1f}"
            f"   (engine total is the wall time of one explain() call)"
        )
        out(
            f"tolerance r >= {MIN_R} and top-10% IoU >= {MIN_IOU} for every map: "
            f"{'PASS' if ok else 'FAIL'}"
        )
    out(
        f"fast set ({len(FAST)} methods: all but occlusion and IG): top-1 {top1:.3f} s "
        f"(target 1.5 s), top-5 {top5:.3f} s (target 5 s)"
    )
    after = "" if args.skip_naive else f"; after the naive runs: {rss_mb():.0f} MB"
    out(f"peak RSS after the first engine runs: {rss_engine:.0f} MB (target < 3000){after}")
    if args.repeats > 1:
        out(f"(times: fastest of {args.repeats} alternating rounds)")
    x = preprocess(face[None]).to(device)
    score = targets[0].bind(0)
    with torch.no_grad():
        delta = float(score(model(x)) - score(model(torch.full_like(x, -1.0))))
    total = float(eng["deeplift"].values.sum(dtype=np.float64))
    out(
        f"DeepLIFT completeness on iResNet-50: sum of map {total:.6f} vs f(x) - f(black) "
        f"{delta:.6f} ({100 * abs(total - delta) / abs(delta):.4f}% off)"
    )

    if not args.no_flops:
        groups = {
            "occlusion": (["occlusion"], precision),
            "integrated_gradients": (["integrated_gradients"], precision),
            "shared pass (7 fast methods)": (list(FAST), "fp32"),
        }
        out("")
        out("FLOPs executed by the engine (torch FlopCounterMode; conv/matmul incl. backward):")
        floor_s = 0.0
        for label, (methods, prec) in groups.items():
            flops = count_flops(
                lambda methods=methods: explain(
                    model, face, targets[0], methods=methods, params=params
                )
            )
            secs = sum(engine_s[m] for m in methods)
            peak = args.peak_bf16 if prec == "bf16" else args.peak_fp32
            floor_s += flops / 1e9 / peak
            out(
                f"  {label:30s} {flops / 1e9:8.1f} GFLOP in {secs:6.2f} s = "
                f"{flops / 1e9 / secs:6.1f} GFLOP/s ({prec}, {100 * flops / 1e9 / secs / peak:.0f}% "
                f"of {peak:.0f} peak)"
            )
        n_windows = 22 * 22
        naive_floor = (n_windows + 1 + 32 * 2 + 2 * 7 + 2) * FORWARD_GFLOP
        out(
            f"  engine total: {floor_s:.2f} s at peak vs {engine_total:.2f} s measured "
            f"({100 * floor_s / engine_total:.0f}% of the FLOP floor of its own algorithm)"
        )
        out(
            f"  naive algorithm needs ~{naive_floor:.0f} GFLOP ({n_windows}+1 occlusion forwards, "
            f"32 IG forward+backward, ~16 passes for the rest) = {naive_floor / args.peak_fp32:.1f} s "
            f"at the fp32 peak"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
