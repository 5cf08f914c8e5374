"""``gmx report``: one photo -> a case report (HTML or PDF).

    gmx report photo.jpg --out case.pdf [--methods gradcam_signed saliency] [--top-k 5]
        [--rows 3] [--include-face] [--face N] [--hpo HP:0000316 ...] [--case-id ID]

Wire into ``gmx.cli.build_parser`` with ``add_parser(sub)``. The format follows ``--out``'s
extension (``.pdf``, ``.html``/``.htm``); every argument is checked before any model is loaded.
The photo is read, never copied; the report is the only file written.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from gmx._cli_args import add_hpo_arg, add_min_distance_arg, add_model_args, configured
from gmx.report._model import DEFAULT_TOP_K

log = logging.getLogger("gmx")

#: Maps drawn by default: one layer method and one input method, both fast on a CPU.
DEFAULT_REPORT_METHODS = ("gradcam_signed", "saliency")
#: Syndromes explained by default (the top ones).
DEFAULT_MAP_ROWS = 3


def _output_file(out: Path) -> None:
    """Refuse a folder as ``--out`` and create the report's folder (before any work)."""
    from gmx.errors import OutputError

    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give the name of the report file.")
    out.parent.mkdir(parents=True, exist_ok=True)


def _report_format(out: Path) -> str:
    from gmx.errors import OutputError
    from gmx.report import REPORT_FORMATS

    fmt = REPORT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"--out {out}: unknown report format {out.suffix or '(no extension)'!r}; "
            f"name the file {', '.join('*' + s for s in REPORT_FORMATS)}."
        )
    return fmt


def _check_methods(methods: list[str]) -> tuple[str, ...]:
    from gmx.explain import list_methods

    known = list(list_methods())
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(
            f"unknown method(s) {', '.join(unknown)}; known: {', '.join(known)} "
            "(give --methods with no name for a report without maps)"
        )
    return tuple(dict.fromkeys(methods))


def cmd_report(args: argparse.Namespace) -> int:
    """Diagnose one photo, explain its top syndromes, write the case report to ``--out``."""
    from gmx.align import load_image
    from gmx.errors import ImageLoadError
    from gmx.explain import explain_targets
    from gmx.gallery import FeatureChoices
    from gmx.panel import panel_rows
    from gmx.pipeline import Diagnoser
    from gmx.report import ReportMaps, build_report, render

    out = Path(args.out)
    fmt = _report_format(out)
    methods = _check_methods(args.methods)
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.rows < 1:
        raise ValueError(f"--rows must be >= 1, got {args.rows}")
    if args.face < 0:
        raise ValueError(f"--face must be >= 0, got {args.face}")
    choices = FeatureChoices(tuple(args.hpo), tuple(args.absent_hpo))
    _output_file(out)
    photo: Path = args.photo
    try:
        data = photo.read_bytes()
    except OSError as exc:
        why = exc.strerror or "unreadable"
        raise ImageLoadError(f"cannot read the photo {photo}: {why}") from exc
    load_image(data)  # an unreadable photo is refused before any model is loaded
    cfg = configured(args)
    t0 = time.perf_counter()
    with Diagnoser.from_config(cfg, progress=log.info) as diagnoser:
        d = diagnoser.diagnose(data, face_index=args.face, min_distance=args.min_distance)
        if not d.ok:
            log.error("%s: %s", photo, d.message)
            return 1
        for doubt in d.doubts:
            log.warning("%s: %s", photo, doubt)
        if len(d.alignment.faces) > 1:
            log.warning(
                "%s: %d faces found; reporting face %d (numbered from 0, largest first; --face)",
                photo,
                len(d.alignment.faces),
                d.face_index,
            )
        maps = None
        if methods:
            variants = list(diagnoser.ensemble.variants)
            rows, _ = panel_rows(
                "similarity", d.ranking, diagnoser.gallery, variants, None, args.rows
            )
            log.info("computing %d map(s)", len(rows) * len(methods))
            grid = explain_targets(
                [m.model for m in diagnoser.models],
                d.face.image,
                [r.target for r in rows],
                variants,
                methods=methods,
            )
            maps = ReportMaps(rows, grid, methods)
        report = build_report(
            d,
            diagnoser.ensemble,
            diagnoser.gallery,
            case_id=args.case_id or f"case-{d.image_sha256[:8]}",
            top_k=args.top_k,
            choices=choices,
            maps=maps,
            include_face=args.include_face,
            demo=cfg.is_demo,
            gallery_file=cfg.gallery_path,
            parameters={"min_distance": "off" if args.min_distance is None else args.min_distance},
        )
    payload = render(report, fmt)
    out.write_bytes(payload)
    log.info(
        "wrote %s (%d bytes, %s%s) in %.1f s",
        out,
        len(payload),
        fmt.upper(),
        ", with the aligned face" if args.include_face else ", without the face",
        time.perf_counter() - t0,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``gmx report`` to the ``gmx`` command's subparsers."""
    p = sub.add_parser(
        "report",
        help="a case report (HTML or PDF) of one photo: top-k, calibrated statements, genes, "
        "HPO features, maps, provenance",
        description="Diagnose one photo and write its case report. The format follows --out's "
        "extension (.pdf, .html). The aligned face is left out unless --include-face is given.",
    )
    p.add_argument("photo", type=Path, help="the patient's photo")
    p.add_argument("--out", type=Path, required=True, help="report file: case.pdf or case.html")
    p.add_argument(
        "--methods",
        nargs="*",
        default=list(DEFAULT_REPORT_METHODS),
        metavar="METHOD",
        help=f"explanation methods to draw (default: {' '.join(DEFAULT_REPORT_METHODS)}; "
        "none after the flag: no maps)",
    )
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="syndromes and genes listed")
    p.add_argument(
        "--rows", type=int, default=DEFAULT_MAP_ROWS, help="top syndromes explained by the maps"
    )
    p.add_argument(
        "--include-face",
        action="store_true",
        help="put the aligned face in the report and draw the maps over it (default: no face)",
    )
    p.add_argument("--face", type=int, default=0, help="which face of the photo (0 = largest)")
    add_hpo_arg(p, "--hpo", "an HPO term confirmed present (repeat for more); marked in the report")
    add_hpo_arg(
        p, "--absent-hpo", "an HPO term confirmed absent (repeat for more); left out of the report"
    )
    p.add_argument("--case-id", default=None, help="case id (default: case-<photo hash>)")
    add_min_distance_arg(p)
    add_model_args(p)
    p.set_defaults(func=cmd_report)
