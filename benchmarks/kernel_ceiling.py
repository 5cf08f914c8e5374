"""The best fraction of peak an Explain view can reach here: one bare gradient pass (issue 10, speed).

``benchmarks/pages.py`` compares each page view with its FLOP floor (the FLOPs it executes at this
machine's peak, the best large fp32 matmul). An Explain view is mostly gradient passes of the
backbone with respect to the input (forward + backward, no weight gradients). This script times
that pass alone, outside Streamlit, AppTest, the FLOP meters and every method's own arithmetic: the
explain engine's private copy of the backbone (channels-last, PReLU decomposed, parameters frozen;
:func:`gmx.explain.prepared.engine_model`), a batch of ``rows`` 112 x 112 faces, the score a cosine to a
fixed unit vector, ``torch.autograd.grad`` of its sum with respect to the input. Its FLOPs are counted
with ``torch.utils.flop_counter``'s formulas by the dispatch mode ``pages.py`` uses, in a
separate pass, so the timed passes carry no meter.

The printed ``wall / floor`` of the bare pass is a lower bound for any view made of such passes on
this machine: a view cannot be closer to its FLOP floor than the kernels it runs. Peak and passes are
measured in the same process, alternated.

    python benchmarks/kernel_ceiling.py [--models demo r50 r100] [--rows 1 4 12] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The same peak and the same FLOP formulas as the page benchmark.
from benchmarks.pages import _FlopMode, measure_peak  # noqa: E402


def backbone_of(name: str) -> torch.nn.Module:
    from gmx.config import DEMO_MODEL
    from gmx.encode import iresnet, load_model

    if name == "demo":
        return load_model(DEMO_MODEL, device="cpu").model.backbone
    torch.manual_seed(0)
    return iresnet(int(name.removeprefix("r"))).eval()


def gradient_pass(model: torch.nn.Module, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """d(sum of cosines to ``goal``)/d input: the core of every gradient method of the engine."""
    xs = x.detach().clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    emb = model(xs)
    score = torch.nn.functional.cosine_similarity(emb, goal[None], dim=1).sum()
    (grad,) = torch.autograd.grad(score, xs)
    return grad


def count_flops(model: torch.nn.Module, x: torch.Tensor, goal: torch.Tensor) -> int:
    mode = _FlopMode()
    with mode:  # type: ignore[attr-defined]
        gradient_pass(model, x, goal)
    return int(mode.flops)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["demo", "r50", "r100"])
    ap.add_argument("--rows", nargs="+", type=int, default=[1, 4, 12])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0: the app's automatic policy")
    ap.add_argument("--matmul", type=int, default=2048)
    args = ap.parse_args(argv)

    from gmx.device import set_threads
    from gmx.explain.prepared import engine_model

    set_threads(args.threads)
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} "
        f"torch threads, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'model':6s} {'rows':>4s} {'GFLOP':>8s} {'median s':>9s} {'peak GF/s':>9s} "
        f"{'% peak':>7s} {'wall/floor':>10s}"
    )
    gen = torch.Generator().manual_seed(0)
    for name in args.models:
        model = engine_model(backbone_of(name)).backbone
        for rows in args.rows:
            x = torch.rand((rows, 3, 112, 112), generator=gen) * 2 - 1
            with torch.no_grad():
                width = model(x[:1].contiguous(memory_format=torch.channels_last)).shape[1]
            goal = torch.nn.functional.normalize(torch.randn(width, generator=gen), dim=0)
            gradient_pass(model, x, goal)  # warm-up (oneDNN primitive creation)
            flops = count_flops(model, x, goal)
            times, peaks = [], []
            for _ in range(args.repeats):  # alternated: the same load for both
                peaks.append(measure_peak(args.matmul, repeats=3))
                t0 = time.perf_counter()
                gradient_pass(model, x, goal)
                times.append(time.perf_counter() - t0)
            wall = statistics.median(times)
            peak = max(peaks)
            floor = flops / peak
            print(
                f"{name:6s} {rows:4d} {flops / 1e9:8.2f} {wall:9.3f} {peak / 1e9:9.1f} "
                f"{100 * floor / wall:6.1f}% {wall / floor:10.2f}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
