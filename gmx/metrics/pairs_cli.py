"""``gmx scorecard-pairs``: pair-map faithfulness rows in a scorecard's table (thesis 6.4.3).

    gmx scorecard-pairs --json scorecard.json --pairs 10 [--csv scorecard.csv] [--methods exact]

The first ``--pairs`` held-out faces of the scorecard's face selection (``--data``/``--split``,
the same stratified order as ``gmx scorecard``), each paired with the nearest gallery image of its
own syndrome; every pair method (exact decomposition, pair HiResCAM, pair Grad-CAM, pair
occlusion) is scored by deletion and insertion on both faces against a random map
(:func:`gmx.metrics.pairs.score_pairs`), summarised with the scorecard's bootstrap intervals, and
written into the scorecard JSON (``extra.pairs``) and, with ``--csv``, as ``pair_<method>`` rows
of its method x metric CSV. ``gmx scorecard summarize`` rewrites the file without them: run this
again after it. Wire into ``gmx.cli.build_parser`` with ``add_parser(sub)``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

from gmx._cli_args import add_model_args, configured
from gmx._progress import bar_callback, progress_bar

log = logging.getLogger("gmx")

CSV_FIELDS = ("method", "metric", "mean", "ci_low", "ci_high", "n", "better")


def cmd_scorecard_pairs(args: argparse.Namespace) -> int:
    """Score ``--pairs`` pairs and add their rows to the scorecard ``--json`` (and ``--csv``)."""
    from gmx._io import atomic_write_text
    from gmx.aggregate.run import gallery_ensemble
    from gmx.config import DEMO_DIR
    from gmx.encode import load_model
    from gmx.gallery import load_gallery
    from gmx.metrics.pairs import score_pairs, summarize_pairs, with_pair_rows
    from gmx.metrics.scorecard import held_out_rows, scorecard_from_json
    from gmx.similarity import PairExplainer
    from gmx.synth import load_demo_data

    if args.pairs < 1:
        raise SystemExit("gmx scorecard-pairs: --pairs must be >= 1")
    try:
        data_json = json.loads(Path(args.json).read_text(encoding="utf-8"))
        card = scorecard_from_json(data_json)
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"gmx scorecard-pairs: cannot read the scorecard {args.json}: {exc}"
        ) from exc
    cfg = configured(args)
    models = [load_model(p, device=cfg.device) for p in cfg.model_paths]
    gallery = load_gallery(cfg.gallery_path)
    ensemble = gallery_ensemble(models[0] if len(models) == 1 else models, gallery)
    if card.model_fingerprint and card.model_fingerprint != ensemble.fingerprint:
        raise SystemExit(
            f"gmx scorecard-pairs: {args.json} was made with model {card.model_fingerprint[:12]}, "
            f"not the configured {ensemble.fingerprint[:12]}"
        )
    data = load_demo_data(args.data or DEMO_DIR)
    rows = held_out_rows(
        data.labels, data.splits, data.image_ids, gallery, split=args.split,
        n_images=args.pairs, seed=args.seed,
    )  # fmt: skip
    bar = progress_bar("pairs", total=len(rows), unit="face")
    try:
        results = score_pairs(
            PairExplainer(ensemble, gallery), data.images[rows], [str(x) for x in data.labels[rows]],
            methods=args.methods, steps=args.steps, fill=args.fill, seed=args.seed,
            progress=bar_callback(bar),
        )  # fmt: skip
    finally:
        bar.close()
    settings = {"steps": args.steps, "fill": args.fill, "seed": args.seed, "n_boot": args.boot,
                "split": args.split, "image_ids": [str(x) for x in data.image_ids[rows]]}  # fmt: skip
    table = summarize_pairs(results, n_boot=args.boot, seed=args.seed, settings=settings)
    atomic_write_text(
        args.json, json.dumps(with_pair_rows(data_json, table), indent=1, allow_nan=False) + "\n"
    )
    if args.csv is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writerows(
            {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            for row in table.rows()
        )
        atomic_write_text(args.csv, card.to_csv() + buf.getvalue())
    for m, metrics in table.table.items():
        log.info("%-16s %s", m, ", ".join(f"{k} {v.mean:+.3f}" for k, v in metrics.items()
                                          if "vs_random" in k))  # fmt: skip
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``scorecard-pairs`` to the ``gmx`` subcommands."""
    from gmx.metrics.faithfulness import FILLS
    from gmx.similarity import PAIR_METHODS

    p = subparsers.add_parser(
        "scorecard-pairs",
        help="pair-map faithfulness (Similarity page's methods) as rows of a scorecard",
    )
    p.add_argument("--json", type=Path, required=True, help="the scorecard JSON to add rows to")
    p.add_argument("--csv", type=Path, help="rewrite this scorecard CSV with the pair rows")
    p.add_argument("--pairs", type=int, default=10, help="held-out faces (one pair each)")
    p.add_argument("--methods", nargs="+", choices=list(PAIR_METHODS), help="default: all")
    add_model_args(p, tta=False)  # the variants are the gallery's, as in gmx scorecard
    p.add_argument("--data", type=Path, help="demo-style data folder (default: the demo)")
    p.add_argument("--split", default="test", help="held-out split of --data (default test)")
    p.add_argument("--steps", type=int, default=10, help="deletion/insertion steps")
    p.add_argument("--fill", choices=FILLS, default="blur", help="deletion/insertion fill")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_scorecard_pairs)


__all__ = ["add_parser", "cmd_scorecard_pairs"]
