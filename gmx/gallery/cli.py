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

log = logging.getLogger("gmx")


def _unaffected_embeddings(args: argparse.Namespace, gallery) -> tuple[np.ndarray, str]:
    """Embeddings of the unaffected cohort: a folder of photos (aligned and embedded with
    ``--models``) or a GestaltMatcher-Arc encodings CSV (``gmx encode``), and what it was."""
    from gmx.errors import GalleryError
    from gmx.gallery import check_compatible, read_encodings

    source = Path(args.unaffected)
    if source.is_dir():
        from tqdm import tqdm

        from gmx.align import FaceAligner
        from gmx.cli import _configured, _ensemble, _photos, _primary_face

        ensemble = _ensemble(_configured(args))
        check_compatible(ensemble, gallery)
        photos = list(_photos([source]))
        faces, failed = [], []
        with FaceAligner() as aligner:
            for path in tqdm(photos, desc="unaffected", unit="img", file=sys.stderr, disable=None):
                face, why = _primary_face(aligner, path)
                if face is None:
                    failed.append(f"{path}: {why}")
                else:
                    faces.append(face)
        for line in failed:
            log.warning("skipped %s", line)
        if not faces:
            raise GalleryError(f"no face found in any of the {len(photos)} photos in {source}")
        return ensemble.embed(faces), f"{len(faces)} photos in {source}"
    table = read_encodings(source)
    if tuple(table.variants) != tuple(gallery.variants):
        raise GalleryError(
            f"{source} holds variants {[v.label for v in table.variants]}, the gallery "
            f"{[v.label for v in gallery.variants]}: encode the unaffected faces with the "
            "gallery's models and settings (`gmx encode`)"
        )
    return table.embeddings, f"{len(table.image_ids)} encodings in {source.name}"


def cmd_gallery_calibrate(args: argparse.Namespace) -> int:
    """Compute the leave-one-patient-out calibration (+ unaffected cohort) and store it."""
    from gmx.cli import output_file
    from gmx.gallery import (
        calibrate,
        calibration_summary,
        load_gallery,
        nearest_syndrome_distances,
        save_gallery,
    )

    out = output_file(Path(args.out)) if args.out else Path(args.gallery_file)
    report = output_file(Path(args.report), "--report") if args.report else None
    gallery = load_gallery(args.gallery_file)
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


def add_parser(gallery_subparsers) -> None:
    """Add ``calibrate`` to the ``gmx gallery`` group."""
    from gmx.cli import _add_model_args

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
    _add_model_args(p, gallery=False)
    p.set_defaults(func=cmd_gallery_calibrate)
