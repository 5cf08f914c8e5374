"""``gmx study``: write, check and analyse clinician studies; export their answers.

    gmx study new [--out study.toml] [--demo N]     # commented template (--demo: N held-out demo cases)
    gmx study new --gallery G [--cases N]           # gallery cases (G: a model set name or gallery file)
    gmx study check study.toml
    gmx study analyse answers.sqlite [--study study.toml] [--format markdown|json] [--fixations F.csv]
    gmx study export answers.sqlite [--format csv|json] [--out FILE]
    gmx study simulate answers.sqlite --study study.toml [--raters 8] [--seed 0]

Wire into ``gmx.cli.build_parser`` with ``add_parser(sub)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("gmx")


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        from gmx._io import atomic_write_text

        atomic_write_text(out, text)
        log.info("wrote %s", out)


def _source_config(study, study_path: Path):
    """The configuration that looks at the study's cases (GMX_CONFIG's model sets and models)."""
    from gmx.shared import load_shared_config
    from gmx.study.cases import case_source_config

    shared = load_shared_config()
    return case_source_config(study, shared.default.config,
                              model_sets={s.name: s.config for s in shared.sets},
                              study_dir=study_path.parent)  # fmt: skip


def _demo_config():
    """The embedded demo's configuration with the thread setting of ``GMX_THREADS`` (the demo's
    cases never read ``GMX_CONFIG``'s models or gallery)."""
    from gmx.config import THREADS_ENV, load_config

    return load_config({THREADS_ENV: os.environ.get(THREADS_ENV, "")})


def cmd_new(args: argparse.Namespace) -> int:
    """Write a commented study template."""
    from gmx.config import DEMO_DIR
    from gmx.gallery import load_gallery
    from gmx.study.cases import demo_case_ids, gallery_case_ids
    from gmx.study.definition import StudyError, new_template

    if args.out is not None and args.out.exists() and not args.force:
        log.error("%s exists; use --force to overwrite", args.out)
        return 2
    if args.gallery is None:
        cases = demo_case_ids(DEMO_DIR)[: args.demo] if args.demo else []
        _write(new_template(cases=cases), args.out)
        return 0
    if args.demo:
        log.error("--demo and --gallery are two case sources: give one")
        return 2
    from gmx.shared import load_shared_config

    sets = {s.name: s.config for s in load_shared_config().sets}
    named = args.gallery in sets
    gallery_value = args.gallery if named else str(Path(args.gallery).expanduser().resolve())
    path = sets[args.gallery].gallery_path if named else Path(gallery_value)
    try:
        cases = gallery_case_ids(load_gallery(path), args.cases)
    except (StudyError, OSError, ValueError) as exc:
        log.error("cannot take cases from %s: %s", path, exc)
        return 2
    _write(new_template(cases=cases, gallery=gallery_value), args.out)
    return 0


def _known_methods() -> tuple[str, ...]:
    from gmx.explain.registry import list_methods

    return list_methods()


def _gallery_problems(study, study_path: Path) -> list[str]:
    """What keeps a gallery case source from being used (its file, photos and ids)."""
    from gmx.errors import GmxError
    from gmx.gallery import load_gallery
    from gmx.study.cases import gallery_case_problems

    try:
        cfg = _source_config(study, study_path)
    except GmxError as exc:
        return [f"the gmx configuration cannot be read: {exc}"]
    if not Path(cfg.gallery_path).is_file():
        return [
            f"cases.gallery {study.case_gallery!r} is neither a model set of the gmx "
            f"configuration nor a gallery file ({cfg.gallery_path} does not exist)"
        ]
    try:
        gallery = load_gallery(cfg.gallery_path)
    except (GmxError, OSError, ValueError) as exc:
        return [f"cases.gallery {cfg.gallery_path} cannot be read: {exc}"]
    return gallery_case_problems(gallery, study.cases, show_photo=cfg.photos_visible)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a study file: exit 0 and "ok", or every problem and exit 1."""
    from gmx.config import DEMO_DIR
    from gmx.study.cases import demo_truth
    from gmx.study.definition import CASE_SOURCE_GALLERY, check, load_study

    problems = check(args.study, known_methods=_known_methods())
    if not problems:
        study = load_study(args.study)
        if study.case_source == CASE_SOURCE_GALLERY:
            problems = _gallery_problems(study, args.study)
        else:
            problems = check(args.study, known_cases=list(demo_truth(DEMO_DIR)))
    if problems:
        for p in problems:
            sys.stdout.write(f"problem: {p}\n")
        return 1
    sys.stdout.write(f"{args.study}: ok\n")
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    """Print the analysis of a study database."""
    from gmx._cli_args import apply_threads
    from gmx.config import DEMO_DIR
    from gmx.study import StudyStore, analyse, load_study, read_fixations, to_markdown
    from gmx.study.cases import case_maps, load_cases, load_source
    from gmx.study.definition import CASE_SOURCE_GALLERY
    from gmx.study.views import demo_pilot

    study = load_study(args.study) if args.study else demo_pilot(DEMO_DIR)
    if not args.db.is_file():
        log.error("%s does not exist", args.db)
        return 2
    answers = StudyStore(args.db, study_name=study.name, fingerprint=study.fingerprint).answers()
    gallery_cases = study.case_source == CASE_SOURCE_GALLERY
    # demo cases: the demo model and gallery; gallery cases: the study's model set or gallery
    cfg = _source_config(study, args.study) if gallery_cases else _demo_config()
    if gallery_cases or args.maps:  # the model runs: the thread policy every command applies
        models, gallery = load_source(apply_threads(cfg))
    else:
        models, gallery = [], None
    cases = load_cases(study, DEMO_DIR, gallery, show_photo=cfg.photos_visible)
    maps = case_maps(study, answers, cases, models, gallery) if args.maps else {}
    fix = read_fixations(args.fixations) if args.fixations else None
    result = analyse(study, answers, truth=cases.labels, maps=maps, masks=cases.masks,
                     fixations=fix, top_percent=args.top_percent)  # fmt: skip
    if args.format == "json":
        _write(json.dumps(result.to_dict(), indent=1), args.out)
    else:
        _write(to_markdown(result), args.out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the answers as CSV or tidy JSON."""
    from gmx.study import StudyStore, to_csv, to_json

    if not args.db.is_file():
        log.error("%s does not exist", args.db)
        return 2
    store = StudyStore(args.db)
    answers = store.answers()
    _write(to_csv(answers) if args.format == "csv" else to_json(answers, store.meta()), args.out)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Fill a database with seeded simulated raters (for trying the analysis)."""
    from gmx.config import DEMO_DIR
    from gmx.gallery import load_gallery
    from gmx.study import StudyStore, load_study
    from gmx.study.cases import load_cases
    from gmx.study.definition import CASE_SOURCE_GALLERY
    from gmx.study.simulate import simulate

    study = load_study(args.study)
    gallery, show = None, None
    if study.case_source == CASE_SOURCE_GALLERY:
        cfg = _source_config(study, args.study)
        gallery, show = load_gallery(cfg.gallery_path), cfg.photos_visible
    cases = load_cases(study, DEMO_DIR, gallery, show_photo=show)
    store = StudyStore(args.db, study_name=study.name, fingerprint=study.fingerprint)
    syndromes = sorted({s for s in cases.labels.values()} | set(cases.syndrome_names))
    ids = simulate(study, store, truth=cases.labels, masks=cases.masks, syndromes=syndromes,
                   n_raters=args.raters, seed=args.seed)  # fmt: skip
    log.info("%d simulated raters written to %s", len(ids), args.db)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``study new|check|analyse|export|simulate`` to the ``gmx`` parser's subcommands."""
    s = subparsers.add_parser(
        "study", help="clinician evaluation studies (file, answers, analysis)"
    )
    ssub = s.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    p = ssub.add_parser("new", help="write a commented study template (TOML)")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.add_argument("--demo", type=int, default=0, metavar="N",
                   help="fill in the first N held-out test cases of the embedded demo")  # fmt: skip
    p.add_argument("--gallery", metavar="G",
                   help="gallery cases: a model set name of the gmx configuration or a gallery "
                        "file with photos")  # fmt: skip
    p.add_argument("--cases", type=int, default=6, metavar="N",
                   help="with --gallery: how many gallery images to fill in (default 6)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=cmd_new)
    p = ssub.add_parser("check", help="validate a study file (exit 1 with every problem)")
    p.add_argument("study", type=Path)
    p.set_defaults(func=cmd_check)
    p = ssub.add_parser("analyse", help="Likert, agreement, arms and region numbers of a study")
    p.add_argument("db", type=Path, help="the study database (.sqlite)")
    p.add_argument("--study", type=Path, help="the study file (TOML; default: the demo pilot)")
    p.add_argument("--format", choices=["markdown", "json"], default="markdown")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.add_argument("--fixations", type=Path, help="eye-tracking CSV: image_id,x,y,duration")
    p.add_argument("--top-percent", type=float, default=10.0, help="k of IoU at top-k %%")
    p.add_argument("--no-maps", dest="maps", action="store_false",
                   help="skip region-vs-map agreement (computing maps needs the model)")  # fmt: skip
    p.set_defaults(func=cmd_analyse)
    p = ssub.add_parser("export", help="the answers as CSV or tidy JSON")
    p.add_argument("db", type=Path)
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_export)
    p = ssub.add_parser("simulate", help="add seeded simulated raters (to try the analysis)")
    p.add_argument("db", type=Path)
    p.add_argument("--study", type=Path, required=True)
    p.add_argument("--raters", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)
