"""``gmx scorecard``: score every attribution method on held-out faces (resumable, shardable).

    gmx scorecard run --out runs/scorecard [--images 20] [--methods ...] [--shard 0/2]
    gmx scorecard summarize --out runs/scorecard [--json scorecard.json] [--csv scorecard.csv]
    gmx scorecard --out runs/scorecard --json scorecard.json     # run, then summarise
    gmx scorecard run --out runs/scorecard --backend ray --workers 8   # the shards as Ray tasks
    gmx scorecard --gallery my.sqlite --out runs/mine --json mine.json  # the gallery's own photos
    gmx scorecard --out runs/sc --extras sensitivity data_randomisation  # + the costly sanity extras

Faces: a synthetic-demo-style data folder (``--data``, default the demo) and its ``--split``
(default ``test``: the frequent held-out test images), those whose syndrome is in the gallery and
whose image is not, in a stratified order (``--images`` of them; 0 = all). ``--faces gallery``
(the default when ``--gallery`` is given without ``--data``): the gallery's own stored photos, each
scored against the gallery without its own patient (leave-one-patient-out); galleries have no
causal masks, so there are no localisation scores. The ``data_randomisation`` extra compares the
maps with those of the shuffled-label control (``--control``, default the demo's committed one). Wire into
``gmx.cli.build_parser`` with ``add_parser(sub)``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gmx._cli_args import add_model_args, configured
from gmx._progress import bar_callback, progress_bar

log = logging.getLogger("gmx")


def _run(args: argparse.Namespace) -> None:
    import numpy as np

    from gmx.aggregate import Shard
    from gmx.aggregate.localisation import syndrome_masks
    from gmx.config import DEMO_DIR
    from gmx.encode import load_model
    from gmx.gallery import load_gallery
    from gmx.metrics.scorecard import (
        ScorecardSettings,
        data_control,
        demo_shuffled_model_path,
        gallery_rows,
        held_out_rows,
        run_scorecard,
        run_scorecard_sharded,
    )
    from gmx.synth import load_demo_data

    cfg = configured(args)
    models = [load_model(p, device=cfg.device) for p in cfg.model_paths]
    model = models[0] if len(models) == 1 else models
    gallery = load_gallery(cfg.gallery_path)
    settings = ScorecardSettings(
        methods=tuple(args.methods or ()),
        steps=args.steps,
        fill=args.fill,
        mprt_images=args.mprt_images,
        n_boot=args.boot,
        seed=args.seed,
        extras=tuple(args.extras or ()),
        sensitivity_samples=args.sensitivity_samples,
        sensitivity_images=args.sensitivity_images,
    ).resolved()
    source = args.faces
    if source == "auto":
        source = "gallery" if args.gallery is not None and args.data is None else "data"
    if source == "gallery":
        try:
            rows = gallery_rows(gallery, n_images=args.images, seed=args.seed)
        except ValueError as exc:
            raise SystemExit(f"gmx scorecard: {exc}") from exc
        assert gallery.photos is not None  # gallery_rows checked
        kw = dict(
            faces=gallery.photos[rows],
            labels=np.array([gallery.images[r].syndrome_id for r in rows]),
            masks=None, image_ids=[gallery.images[r].image_id for r in rows], regions={},
            subjects=[gallery.images[r].subject_id for r in rows],
        )  # fmt: skip
    else:
        data = load_demo_data(args.data or DEMO_DIR)
        rows = held_out_rows(
            data.labels, data.splits, data.image_ids, gallery, split=args.split,
            n_images=args.images, seed=args.seed,
        )  # fmt: skip
        every = held_out_rows(data.labels, data.splits, data.image_ids, gallery, split=args.split)
        kw = dict(
            faces=data.images[rows], labels=data.labels[rows], masks=data.masks[rows],
            image_ids=[str(x) for x in data.image_ids[rows]],
            regions=syndrome_masks(data.labels[every], data.masks[every]),
        )  # fmt: skip
    control = None
    if "data_randomisation" in settings.extras:  # only the scored syndromes' images are embedded
        shuffled = load_model(args.control or demo_shuffled_model_path(), device=cfg.device)
        control = data_control(shuffled, gallery, syndromes=sorted(set(kw["labels"].tolist())))
    kw.update(settings=settings, chunk=args.chunk, control=control)
    bar = progress_bar("scorecard")
    progress = bar_callback(bar)
    try:
        if args.backend == "local":
            run = run_scorecard(
                model, gallery, args.out, shard=Shard.parse(args.shard), progress=progress, **kw
            )
        else:  # the same shards as Ray tasks (progress: finished shards)
            if args.shard != "0/1":
                raise SystemExit("gmx scorecard: --shard is for the local backend; use --workers")
            bar.unit = "shard"
            run = run_scorecard_sharded(
                model, gallery, args.out, n_shards=args.workers, backend=args.backend,
                address=args.ray_address, num_cpus=args.ray_cpus, progress=progress, **kw,
            )  # fmt: skip
    finally:
        bar.close()
    log.info(
        "%d chunk(s) computed, %d already done, %d in the run; %d images in %.1f s",
        run.chunks_done_now, run.chunks_skipped, run.chunks_total, run.rows_done_now, run.seconds,
    )  # fmt: skip


def _summarize(args: argparse.Namespace) -> None:
    from gmx._io import atomic_write_text
    from gmx.metrics.scorecard import summarize_scorecard

    card = summarize_scorecard(args.out)
    text = json.dumps(card.to_json(), indent=1, allow_nan=False)
    if args.json is not None:
        atomic_write_text(args.json, text + "\n")
    if args.csv is not None:
        atomic_write_text(args.csv, card.to_csv())
    if args.json is None:
        sys.stdout.write(text + "\n")
    for m in card.methods:
        v = card.verdicts[m].badges()
        log.info("%-22s %s", m, ", ".join(f"{k}: {'-' if b is None else b}" for k, b in v.items()))


def cmd_scorecard(args: argparse.Namespace) -> int:
    """``gmx scorecard [run|summarize]`` (no action: run, then summarise)."""
    action = getattr(args, "scorecard_command", None)
    if args.out is None:
        raise SystemExit("gmx scorecard: --out (the run folder) is required")
    if action in (None, "run"):
        _run(args)
    if action in (None, "summarize"):
        _summarize(args)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``scorecard`` (and its ``run``/``summarize`` actions) to the ``gmx`` subcommands."""
    from gmx.metrics.backends import BACKENDS
    from gmx.metrics.faithfulness import FILLS
    from gmx.metrics.scorecard import EXTRAS, ScorecardSettings

    def run_args(p: argparse.ArgumentParser) -> None:
        add_model_args(p, tta=False)  # the variants are the gallery's
        p.add_argument("--data", type=Path, help="demo-style data folder (default: the demo)")
        p.add_argument(
            "--faces", choices=("auto", "data", "gallery"), default="auto",
            help="data: held-out faces of --data; gallery: the gallery's own photos, each against "
            "the gallery without its patient (no localisation); auto (default): gallery when "
            "--gallery is given without --data",
        )  # fmt: skip
        p.add_argument("--split", default="test", help="held-out split of --data (default test)")
        p.add_argument("--images", type=int, default=0, help="faces scored (0 = all)")
        p.add_argument("--methods", nargs="+", help="registry names (default: all registered)")
        p.add_argument("--steps", type=int, default=10, help="deletion/insertion steps")
        p.add_argument("--fill", choices=FILLS, default="blur", help="deletion/insertion fill")
        p.add_argument(
            "--mprt-images", type=int, default=10, help="faces given the randomisation test"
        )
        p.add_argument(
            "--extras", nargs="+", choices=sorted(EXTRAS),
            help="optional extra scores: mprt_hog (HOG + edge-map similarity after the cascade), "
            "mprt_independent (each stage randomised alone), completeness (IG, DeepLIFT residual), "
            "agreement (every pair of methods, averaged over the faces), sensitivity (captum "
            "sensitivity_max), data_randomisation (similarity to the shuffled-label model's maps)",
        )  # fmt: skip
        p.add_argument(
            "--sensitivity-samples", type=int, default=ScorecardSettings.sensitivity_samples,
            help="sensitivity extra: captum sensitivity_max perturbations per face",
        )  # fmt: skip
        p.add_argument(
            "--sensitivity-images", type=int, default=ScorecardSettings.sensitivity_images,
            help="sensitivity extra: on the first this-many faces only",
        )  # fmt: skip
        p.add_argument(
            "--control", type=Path,
            help="data_randomisation extra: the shuffled-label model (default: the demo's, "
            "models/demo/gmx-demo-iresnet-shuffled.pt)",
        )  # fmt: skip
        p.add_argument("--chunk", type=int, default=2, help="faces per stored chunk")
        p.add_argument("--shard", default="0/1", help="i/n: compute every n-th chunk from i")
        p.add_argument(
            "--backend", choices=BACKENDS, default="local",
            help="local: this process; ray: the shards as Ray tasks (pip install 'gmx[ray]')",
        )  # fmt: skip
        p.add_argument("--workers", type=int, default=2, help="Ray tasks (shards) of the run")
        p.add_argument("--ray-address", help="Ray cluster to join (default: start a local one)")
        p.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray instance")
        p.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
        p.add_argument("--seed", type=int, default=0)

    def out_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
        if required:
            p.add_argument("--out", type=Path, required=True, help="run folder")
        p.add_argument("--json", type=Path, help="write the scorecard JSON here (else stdout)")
        p.add_argument("--csv", type=Path, help="also write the method x metric table here")

    sc = subparsers.add_parser(
        "scorecard", help="faithfulness, sanity and localisation of every method, with CIs"
    )
    sc.add_argument("--out", type=Path, help="run folder (manifest + chunks)")
    run_args(sc)
    out_args(sc, required=False)
    sc.set_defaults(func=cmd_scorecard, scorecard_command=None)
    sub = sc.add_subparsers(dest="scorecard_command", metavar="ACTION")
    p = sub.add_parser("run", help="compute or resume the per-face scores (--shard i/n)")
    p.add_argument("--out", type=Path, required=True, help="run folder (manifest + chunks)")
    run_args(p)
    p.set_defaults(func=cmd_scorecard)
    p = sub.add_parser("summarize", help="means, bootstrap CIs and verdicts of a run folder")
    p.add_argument("--out", type=Path, required=True, help="run folder (manifest + chunks)")
    out_args(p, required=False)
    p.set_defaults(func=cmd_scorecard)


__all__ = ["add_parser", "cmd_scorecard"]
