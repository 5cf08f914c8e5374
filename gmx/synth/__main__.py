"""``python -m gmx.synth build --out models/demo --seed 0``: rebuild the synthetic demo data."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gmx.config import PROJECT_ROOT

log = logging.getLogger("gmx.synth")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gmx.synth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate the synthetic demo data set")
    b.add_argument("--out", type=Path, default=PROJECT_ROOT / "models" / "demo")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--cache",
        type=Path,
        default=PROJECT_ROOT / ".cache" / "synth",
        help="where registry packages and the source bank are cached (outside git)",
    )
    b.add_argument("--limit", type=int, default=None, help="at most this many patients per class")
    b.add_argument("--montage", type=Path, default=None, help="also write a contact sheet PNG here")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from gmx.synth.build import build_demo

    report = build_demo(
        args.out, seed=args.seed, cache=args.cache, limit=args.limit, progress=not args.quiet
    )
    total = sum(report.files.values())
    log.info(
        "%d images, %d photos dropped (no face), %.1f s, %.2f MB in %s",
        report.n_images,
        report.n_dropped,
        report.seconds,
        total / 1e6,
        report.out,
    )
    for syn_id, (subjects, images) in report.per_class.items():
        log.info("  %s: %d subjects, %d images", syn_id, subjects, images)
    if args.montage is not None:
        from PIL import Image

        from gmx.synth.dataset import load_demo_data
        from gmx.synth.montage import montage

        Image.fromarray(montage(load_demo_data(args.out))).save(args.montage)
        log.info("montage: %s", args.montage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
