"""``gmx batch``: per-image maps for a gallery (resumable, shardable) and syndrome-level summaries.

    gmx batch run --out runs/demo [--methods gradcam hirescam] [--target similarity] [--shard 0/2]
    gmx batch summarize --out runs/demo --results syndromes.npz [--reference-demo models/demo]

Wire into ``gmx.cli.build_parser`` with ``add_parser(sub)``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from gmx._cli_args import add_model_args, configured
from gmx._progress import bar_callback, progress_bar

log = logging.getLogger("gmx")


def _models_and_gallery(args: argparse.Namespace):
    from gmx.encode import load_model
    from gmx.gallery import load_gallery

    cfg = configured(args)  # with the thread policy, as every command that runs the model
    models = [load_model(p, device=cfg.device) for p in cfg.model_paths]
    return models, load_gallery(cfg.gallery_path)


def _variants(args: argparse.Namespace, gallery) -> list[int]:
    if args.all_variants:
        return list(range(len(gallery.variants)))
    return [0]


def cmd_batch_run(args: argparse.Namespace) -> int:
    """Compute (or resume) the per-image maps of a gallery into ``--out``."""
    from gmx.aggregate import Shard, run_batch, select_indices

    models, gallery = _models_and_gallery(args)
    indices = select_indices(gallery, split=args.split, syndromes=args.syndromes)
    bar = progress_bar("batch maps")
    try:
        run = run_batch(
            models,
            gallery,
            args.out,
            methods=args.methods,
            target=args.target,
            indices=indices,
            variants=_variants(args, gallery),
            batch_size=args.batch_size,
            chunk=args.chunk,
            shard=Shard.parse(args.shard),
            progress=bar_callback(bar),
        )
    finally:
        bar.close()
    rate = run.rows_done_now / run.seconds if run.seconds > 0 else 0.0
    log.info(
        "%d chunk(s) computed, %d already done, %d in the run; %d images in %.1f s (%.1f img/s)",
        run.chunks_done_now,
        run.chunks_skipped,
        run.chunks_total,
        run.rows_done_now,
        run.seconds,
        rate,
    )
    return 0


def cmd_batch_summarize(args: argparse.Namespace) -> int:
    """Syndrome-level results from a run folder into ``--results`` (and a JSON table on stdout)."""
    from gmx.aggregate import load_batch, save_results, summarize

    models, gallery = _models_and_gallery(args)
    batch = load_batch(args.out, gallery)
    if not batch.complete:
        log.warning(
            "run %s is incomplete (%d of %d images)",
            args.out,
            batch.finished.sum(),
            len(batch.keys),
        )
    ref_faces = ref_maps = loc = None
    if args.reference_demo is not None:
        from gmx.aggregate.localisation import held_out_study
        from gmx.synth import load_demo_data

        data = load_demo_data(args.reference_demo)
        cohort = data.select(data.splits == "unaffected")
        ref_faces = cohort.images
        rng = np.random.default_rng(args.seed)
        pick = np.sort(
            rng.choice(len(cohort), min(args.reference_count, len(cohort)), replace=False)
        )
        # Held out: never trained on (test split, rare syndromes) and not in the gallery.
        in_gallery = {im.image_id for im in gallery.images}
        held = data.select(
            np.isin(data.splits, ["test", "rare"])
            & ~np.isin(data.image_ids, sorted(in_gallery))
            & np.isin(data.labels, sorted(set(batch.syndromes.tolist())))
        )
        study = held_out_study(
            models,
            gallery,
            held.images,
            held.labels,
            held.subject_ids,
            held.masks,
            cohort.images[pick],
            cohort.subject_ids[pick],
            methods=batch.manifest["methods"],
            target=batch.manifest["target"],
            variants=batch.manifest["variants"],
            n_boot=args.boot,
            seed=args.seed,
            progress=lambda msg: print(msg, file=sys.stderr),
        )
        ref_maps, loc = study.reference_maps, study.localisation
    masks = gallery.extras.get("gt_mask")
    results = summarize(
        batch,
        gallery,
        masks=masks,
        reference_faces=ref_faces,
        reference_maps=ref_maps,
        localisation=loc,
    )
    save_results(results, args.results)
    if loc is not None:
        from gmx.aggregate.localisation import summary_markdown

        sys.stderr.write("Localisation on held-out images (AUROC), own minus null [95 % CI]:\n")
        sys.stderr.write(summary_markdown(loc))
    if loc is not None and args.localisation_out is not None:
        from gmx.aggregate.localisation import to_json

        args.localisation_out.write_text(json.dumps(to_json(loc), indent=1, allow_nan=True))
    json.dump(results.table(), sys.stdout, indent=1, default=float)
    sys.stdout.write("\n")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``batch run`` and ``batch summarize`` to the ``gmx`` parser's subcommands."""
    from gmx.aggregate.run import DEFAULT_METHODS
    from gmx.aggregate.targets import TARGET_MODES

    def model_args(p: argparse.ArgumentParser) -> None:
        add_model_args(p, tta=False)  # the variants are the gallery's (--all-variants)
        p.add_argument("--out", type=Path, required=True, help="run folder (manifest + chunks)")

    b = subparsers.add_parser("batch", help="per-image maps of a gallery, syndrome-level summaries")
    bsub = b.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    p = bsub.add_parser("run", help="compute or resume per-image maps (resumable, --shard i/n)")
    model_args(p)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="registry names")
    p.add_argument(
        "--target",
        choices=TARGET_MODES,
        default="similarity",
        help="similarity to the nearest other patient of the own syndrome (default), its logit, "
        "or auto (logit where the classifier has the class)",
    )
    p.add_argument("--split", help="only gallery images of this split")
    p.add_argument("--syndromes", nargs="+", help="only these syndrome ids")
    p.add_argument("--all-variants", action="store_true", help="average all TTA variants")
    p.add_argument("--batch-size", type=int, default=0, help="faces per pass (0 = automatic)")
    p.add_argument("--chunk", type=int, default=64, help="images per stored chunk")
    p.add_argument("--shard", default="0/1", help="i/n: compute every n-th chunk starting at i")
    p.set_defaults(func=cmd_batch_run)
    p = bsub.add_parser("summarize", help="syndrome means, spread, stability, composites")
    model_args(p)
    p.add_argument("--results", type=Path, required=True, help="output .npz")
    p.add_argument(
        "--reference-demo",
        type=Path,
        help="synthetic demo folder: its unaffected cohort serves the contrasts, its held-out "
        "images (test split, rare test) the localisation against nulls",
    )
    p.add_argument("--reference-count", type=int, default=48, help="cohort faces explained")
    p.add_argument(
        "--boot", type=int, default=1000, help="bootstrap replicates of the localisation nulls"
    )
    p.add_argument(
        "--localisation-out", type=Path, help="also write the localisation table (JSON) here"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_batch_summarize)


__all__ = ["add_parser", "cmd_batch_run", "cmd_batch_summarize"]
