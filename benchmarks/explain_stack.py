"""The explain engine's shared pass with and without TTA-variant stacking, alternating in one process.

Times ``explain_targets`` (the Explain page's fast methods, 3 similarity targets, the 4 TTA
variants of one model; wall and process CPU time) with ``gmx.explain.engine.STACK_ROWS = 1`` (every variant in its own pass,
the engine before stacking) and with the default (the variants of a model in one batch), in
alternating order, and prints each map's largest difference relative to its largest value.

    python benchmarks/explain_stack.py --model demo          # the demo model and a demo face
    python benchmarks/explain_stack.py --model iresnet100    # random-init iResNet-100, astronaut
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np
import torch

METHODS = (
    "saliency",
    "deconvolution",
    "guided_backprop",
    "deeplift",
    "gradcam_signed",
    "hirescam_signed",
    "fullgrad",
)


def _setup(model: str) -> tuple[list[object], np.ndarray]:
    if model == "demo":
        from gmx.config import GmxConfig
        from gmx.pipeline import Diagnoser
        from ui.examples import example_files

        with Diagnoser.from_config(GmxConfig()) as diagnoser:
            alignment, _ = diagnoser.align(example_files()[0].read_bytes())
            return [m.model for m in diagnoser.models], alignment.faces[0].image
    from PIL import Image
    from skimage import data
    from torch import nn

    from gmx.encode import GestaltModel, iresnet
    from pages import ENSEMBLE_DEPTHS, N_SYNDROMES  # benchmarks/pages.py, this script's folder

    # The page benchmark's ensemble weights (same seed and order): its cell grids are on disk.
    torch.manual_seed(0)
    modules = [
        GestaltModel(iresnet(d).eval(), nn.Linear(512, N_SYNDROMES)) for d in ENSEMBLE_DEPTHS
    ]
    crop = data.astronaut()[34:177, 150:293]
    face = np.asarray(Image.fromarray(crop).resize((112, 112), Image.Resampling.BICUBIC))
    return [modules[ENSEMBLE_DEPTHS.index(100)]], face


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "iresnet100"], default="demo")
    parser.add_argument("--repeats", type=int, default=3, help="pairs (alternating order)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from gmx.explain import SimilarityTarget, engine, explain_targets
    from gmx.variants import Variant

    models, face = _setup(args.model)
    variants = [Variant(0), Variant(0, flip=True), Variant(0, grey=True), Variant(0, True, True)]
    rng = np.random.default_rng(0)
    targets = [
        SimilarityTarget(rng.standard_normal((len(variants), 512)).astype(np.float32))
        for _ in range(3)
    ]
    stacked = engine.STACK_ROWS

    def run(rows: int) -> tuple[float, float, tuple[dict, ...]]:
        engine.STACK_ROWS = rows
        start, cpu = time.perf_counter(), time.process_time()
        grid = explain_targets(models, face, targets, variants, methods=METHODS)
        return time.perf_counter() - start, time.process_time() - cpu, grid

    run(stacked)  # warm: engine copy, cell grids
    print(
        f"{args.model}: 4 variants x 3 targets x {len(METHODS)} methods, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    times: dict[int, list[float]] = {1: [], stacked: []}
    cpus: dict[int, list[float]] = {1: [], stacked: []}
    grids: dict[int, tuple[dict, ...]] = {}
    for i in range(args.repeats):
        for rows in (1, stacked) if i % 2 == 0 else (stacked, 1):
            seconds, cpu, grids[rows] = run(rows)
            times[rows].append(seconds)
            cpus[rows].append(cpu)
            print(f"  STACK_ROWS={rows:>2}: {seconds:.2f} s wall, {cpu:.2f} s CPU")
    worst = {
        m: max(
            float(np.abs(a[m].values - b[m].values).max() / np.abs(b[m].values).max())
            for a, b in zip(grids[stacked], grids[1], strict=True)
        )
        for m in METHODS
    }
    print(
        f"median: per variant {np.median(times[1]):.2f} s, stacked {np.median(times[stacked]):.2f} s"
        f" ({np.median(times[1]) / np.median(times[stacked]):.2f}x); CPU per variant "
        f"{np.median(cpus[1]):.2f} s, stacked {np.median(cpus[stacked]):.2f} s "
        f"({np.median(cpus[1]) / np.median(cpus[stacked]):.2f}x); load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print("largest |stacked - per variant| / max |per variant| per method:")
    print("  " + ", ".join(f"{m} {v:.1e}" for m, v in worst.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
