"""``gmx gallery calibrate``: store a gallery's calibration (leave-one-patient-out + unaffected).

    gmx gallery calibrate GALLERY [--unaffected DIR_OR_CSV] [--out FILE] [--report FILE]

Wire into the ``gallery`` group of ``gmx.cli.build_parser`` with ``add_parser(gallery_subparsers)``.
The figures (:func:`~gmx.gallery.calibration_summary`) go to stdout as JSON; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from gmx._cli_args import add_model_args, configured
from gmx._progress import progress_bar

log = logging.getLogger("gmx")


def _unaffected_embeddings(args: argparse.Namespace, gallery) -> tuple[np.ndarray, str]:
    """Embeddings of the unaffected cohort and what they were: a folder of photos (each aligned
    and embedded exactly as the Diagnose page and ``gmx predict`` do, with the gallery's models:
    ``--models`` or the configured ones) or a GestaltMatcher-Arc encodings CSV (``gmx encode``)."""
    from gmx.errors import GalleryError
    from gmx.gallery import read_encodings

    source = Path(args.unaffected)
    if source.is_dir():
        return _embed_folder(args, source)
    table = read_encodings(source)
    if tuple(table.variants) != tuple(gallery.variants):
        raise GalleryError(
            f"{source} holds variants {[v.label for v in table.variants]}, the gallery "
            f"{[v.label for v in gallery.variants]}: encode the unaffected faces with the "
            "gallery's models and settings (`gmx encode`)"
        )
    return table.embeddings, f"{len(table.image_ids)} encodings in {source.name}"


def _embed_folder(args: argparse.Namespace, folder: Path) -> tuple[np.ndarray, str]:
    """The largest face of every file in ``folder`` (sorted; undecodable or faceless files are
    skipped with a warning), embedded by a :class:`~gmx.pipeline.Diagnoser` on the gallery."""
    from gmx.errors import GalleryError, ImageLoadError
    from gmx.pipeline import Diagnoser

    cfg = configured(args)  # args.gallery is the gallery being calibrated
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    embeddings, skipped = [], []
    with Diagnoser.from_config(cfg, progress=log.info) as diagnoser:
        for path in progress_bar("unaffected", files):
            try:
                d = diagnoser.diagnose(path)
            except ImageLoadError as exc:
                skipped.append(f"{path.name}: {exc}")
                continue
            if d.embeddings is None:
                skipped.append(f"{path.name}: {d.message or 'no face found'}")
                continue
            embeddings.append(d.embeddings)
    for line in skipped:
        log.warning("skipped %s", line)
    if not embeddings:
        raise GalleryError(f"no face found in any of the {len(files)} files in {folder}")
    return np.stack(embeddings), f"{len(embeddings)} photos in {folder}"


def cmd_gallery_calibrate(args: argparse.Namespace) -> int:
    """Compute the leave-one-patient-out calibration (+ unaffected cohort) and store it."""
    from gmx.errors import OutputError
    from gmx.gallery import (
        calibrate,
        calibration_summary,
        load_gallery,
        nearest_syndrome_distances,
        save_gallery,
    )

    out = Path(args.out) if args.out else Path(args.gallery_file)
    report = Path(args.report) if args.report else None
    for flag, path in (("--out", out), ("--report", report)):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            raise OutputError(f"{flag} {path}: not a file in an existing folder")
    args.gallery = Path(args.gallery_file)
    gallery = load_gallery(args.gallery_file)
    if gallery.calibration is not None:
        log.warning(
            "%s already holds a %s calibration (%s); it is replaced",
            args.gallery_file,
            gallery.calibration.method,
            gallery.calibration.provenance or "no details",
        )
    unaffected, provenance = (
        None,
        "gmx gallery calibrate: leave-one-patient-out; no unaffected cohort",
    )
    if args.unaffected is not None:
        embeddings, what = _unaffected_embeddings(args, gallery)
        unaffected = nearest_syndrome_distances(embeddings, gallery)
        provenance = f"gmx gallery calibrate: leave-one-patient-out; unaffected: {what}"
    calibration = calibrate(gallery, unaffected=unaffected, provenance=provenance)
    save_gallery(replace(gallery, calibration=calibration), out)
    text = json.dumps(calibration_summary(calibration).to_dict(), indent=2) + "\n"
    if report is not None:
        report.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    log.info(
        "calibrated %s: %d images counted, %d skipped, %s unaffected; wrote %s",
        gallery.name,
        calibration.n_images,
        calibration.n_skipped_images,
        calibration.n_unaffected if calibration.n_unaffected is not None else "no",
        out,
    )
    return 0


def add_parser(gallery_subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` to the ``gmx gallery`` group."""
    p = gallery_subparsers.add_parser(
        "calibrate",
        help="store the gallery's calibration: leave-one-patient-out distances (+ an unaffected "
        "cohort) behind the calibrated statements (docs/gallery.md)",
    )
    p.add_argument("gallery_file", type=Path)
    p.add_argument(
        "--unaffected",
        type=Path,
        default=None,
        metavar="DIR_OR_CSV",
        help="unaffected people: a folder of photos (aligned and embedded with --models) or an "
        "encodings CSV from `gmx encode`; each face's distance to its nearest syndrome is stored",
    )
    p.add_argument("--out", type=Path, default=None, help="gallery to write (default: in place)")
    p.add_argument("--report", type=Path, default=None, help="also write the figures (JSON) here")
    add_model_args(  # --gallery is the gallery being calibrated (gallery_file)
        p,
        gallery=False,
        models_help="models for a photo folder (default: the configured ones, else the demo)",
    )
    p.set_defaults(func=cmd_gallery_calibrate)
