"""The ``gmx`` command: align, encode, predict, build and inspect galleries, evaluate.

Every subcommand works on the embedded demo by default and on real GestaltMatcher files with
``--models``/``--gallery`` (or ``GMX_CONFIG``). Results go to stdout as JSON or to the named files;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gmx import __version__
from gmx._cli_args import add_hpo_arg, add_min_distance_arg, add_model_args, configured
from gmx._progress import bar_callback, progress_bar
from gmx.config import GmxConfig
from gmx.errors import OutputError

if TYPE_CHECKING:
    from gmx.gallery import Ranking

log = logging.getLogger("gmx")

#: Output formats of ``gmx predict`` (the first is the default).
PREDICT_FORMATS = ("json", "phenopacket", "genes-tsv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _ensemble(cfg: GmxConfig):
    from gmx.encode import Ensemble, load_model

    models = [load_model(p, device=cfg.device) for p in cfg.model_paths]
    return Ensemble(models, flip=cfg.flip, grey=cfg.grey, precision=cfg.precision)


def _photos(paths: Sequence[Path]) -> Iterator[Path]:
    """Photos named on the command line, folders expanded (sorted); each file once."""
    seen: set[str] = set()
    for p in paths:
        found = (
            sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if p.is_dir()
            else [p]
        )
        for q in found:
            key = os.path.abspath(q)
            if key not in seen:
                seen.add(key)
                yield q


# -------------------------------------------------------------------------------- output paths
def output_stems(photos: Sequence[Path]) -> list[str]:
    """Unique, stable names (relative POSIX paths without extension) for per-photo outputs.

    A photo's name is its path relative to the deepest folder that holds all the photos, without
    the extension: photos of one folder keep their plain stem, ``a/photo.jpg`` and ``b/photo.jpg``
    become ``a/photo`` and ``b/photo``. Names that still clash (compared case-insensitively, as on
    macOS and Windows disks), e.g. ``x.jpg`` and ``x.png``, keep their extension (``x-jpg``,
    ``x-png``); anything still clashing gets ``-2``, ``-3``, ... in input order. The same photos in
    the same order always get the same names.
    """
    if not photos:
        return []
    absolute = [Path(os.path.abspath(p)) for p in photos]
    root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    relative = [p.relative_to(root) for p in absolute]
    stems = [r.with_suffix("").as_posix() for r in relative]
    counts = Counter(s.lower() for s in stems)
    stems = [
        f"{s}-{r.suffix[1:]}" if counts[s.lower()] > 1 and r.suffix else s
        for s, r in zip(stems, relative, strict=True)
    ]
    used: set[str] = set()
    out = []
    for stem in stems:
        name, n = stem, 1
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name.lower())
        out.append(name)
    return out


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _probe_writable(folder: Path, flag: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(
            f"{flag} {folder}: cannot write into this folder ({_os_reason(exc)})."
        ) from exc


def output_folder(out: Path, flag: str = "--out") -> Path:
    """Check (before any work) that ``out`` is a folder gmx can write into; create it if needed.

    Raises:
        OutputError: ``out`` is an existing file, cannot be created, or is not writable.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"{flag} {out} is a file, not a folder; give a folder for the outputs.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{flag} {out}: cannot create this folder ({_os_reason(exc)}).") from exc
    _probe_writable(out, flag)
    return out


def output_file(out: Path, flag: str = "--out") -> Path:
    """Check (before any work) that the file ``out`` can be written; create its folder if needed.

    Raises:
        OutputError: ``out`` is a folder, its folder cannot be created, or is not writable.
    """
    if out.is_dir():
        raise OutputError(f"{flag} {out} is a folder; give the name of the file to write in it.")
    output_folder(out.parent, flag=f"{flag} {out.name}: the folder")
    return out


def _primary_face(aligner, path: Path):
    """The largest face of a photo file, or ``(None, why)``."""
    from gmx.align import load_image
    from gmx.errors import ImageLoadError

    try:
        face = aligner.align(load_image(path)).primary
    except ImageLoadError as exc:
        return None, str(exc)
    return (face, None) if face is not None else (None, "no face found")


# --------------------------------------------------------------------------------------- align
def cmd_align(args: argparse.Namespace) -> int:
    from gmx.align import FaceAligner, load_image
    from gmx.errors import ImageLoadError
    from gmx.viz import to_png_bytes

    out = output_folder(Path(args.out))
    photos = list(_photos(args.photos))
    stems = output_stems(photos)
    summary = []
    replaced = 0
    with FaceAligner(max_faces=args.max_faces) as aligner:
        jobs = list(zip(photos, stems, strict=True))
        for path, stem in progress_bar("align", jobs):
            try:
                result = aligner.align(load_image(path))
            except ImageLoadError as exc:
                summary.append({"photo": str(path), "error": str(exc)})
                continue
            faces = []
            for i, face in enumerate(result.faces):
                name = f"{stem}_face{i}.png"
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                replaced += target.exists()
                target.write_bytes(to_png_bytes(face.image))
                faces.append(
                    {
                        "aligned": name,
                        "box": list(face.box),
                        "five_points": face.five_points.tolist(),
                        "transform": face.transform.tolist(),
                        "quality": {
                            k: v for k, v in face.quality.__dict__.items() if k != "warnings"
                        },
                        "warnings": list(face.quality.warnings),
                    }
                )
            summary.append({"photo": str(path), "faces": faces, "message": result.message})
    if replaced:
        log.warning(
            "replaced %d aligned face(s) already in %s (from an earlier run)", replaced, out
        )
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if all("error" not in s for s in summary) else 1


# -------------------------------------------------------------------------------------- encode
def cmd_encode(args: argparse.Namespace) -> int:
    from gmx.align import FaceAligner
    from gmx.gallery import EncodingTable, image_id_from_name, write_encodings

    out = output_file(Path(args.out))
    photos = list(_photos(args.photos))
    _check_unique_image_ids(photos, image_id_from_name)
    cfg = configured(args)
    ensemble = _ensemble(cfg)
    ids, names, embeddings, failed = [], [], [], []
    with FaceAligner() as aligner:
        for path in progress_bar("encode", photos):
            face, why = _primary_face(aligner, path)
            if face is None:
                failed.append(f"{path}: {why}")
                continue
            ids.append(image_id_from_name(path.name))
            names.append(path.name)
            embeddings.append(ensemble.embed([face])[0])
    if not ids:
        log.error("no photo could be encoded:\n%s", "\n".join(failed))
        return 1
    emb = np.stack(embeddings)
    table = EncodingTable(
        image_ids=tuple(ids),
        file_names=tuple(names),
        variants=ensemble.variants,
        model_names=tuple(m.card.name for m in ensemble.models),
        embeddings=emb,
        class_conf=tuple(np.zeros((len(ids), 1), np.float32) for _ in ensemble.variants),
    )
    write_encodings(table, out)
    for line in failed:
        log.warning("skipped %s", line)
    log.info("wrote %d encodings (%d variants) to %s", len(ids), len(ensemble.variants), out)
    return 0 if not failed else 1


def _check_unique_image_ids(photos: Sequence[Path], image_id: Callable[[str], str]) -> None:
    """Refuse photos whose encodings rows would share an image id (before any work)."""
    by_id: dict[str, list[str]] = {}
    for path in photos:
        by_id.setdefault(image_id(path.name), []).append(str(path))
    clashes = {k: v for k, v in by_id.items() if len(v) > 1}
    if clashes:
        key, paths = next(iter(clashes.items()))
        more = f" (and {len(clashes) - 1} more ids)" if len(clashes) > 1 else ""
        raise OutputError(
            f"{len(paths)} photos would get the same image id {key!r} in the encodings file: "
            f"{', '.join(paths[:4])}{more}. The id is the file name up to its first '_' (as in "
            "GestaltMatcher's encodings); rename the photos so that their ids differ."
        )


# ------------------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    from gmx.errors import GmxError
    from gmx.pipeline import Diagnoser
    from gmx.serve.answers import diagnosis_json

    cfg = configured(args)
    if args.hpo and args.format != "phenopacket":
        log.warning("--hpo is written only with --format phenopacket; ignored here")
    photos = list(_photos(args.photos))
    case_ids = output_stems(photos)
    with Diagnoser.from_config(cfg, progress=log.info) as diagnoser:
        results = []
        ranked: list[tuple[str, Ranking]] = []
        status = 0
        for path, case_id in zip(photos, case_ids, strict=True):
            try:
                d = diagnoser.diagnose(
                    path.read_bytes(), face_index=args.face, min_distance=args.min_distance
                )
            except GmxError as exc:
                results.append({"case_id": case_id, "photo": str(path), "error": str(exc)})
                status = 1
                continue
            except OSError as exc:
                results.append(
                    {
                        "case_id": case_id,
                        "photo": str(path),
                        "error": f"cannot read {path}: {_os_reason(exc)}",
                    }
                )
                status = 1
                continue
            if not d.ok:
                results.append({"case_id": case_id, "photo": str(path), "error": d.message})
                status = 1
                continue
            n_faces = len(d.alignment.faces)
            if n_faces > 1:
                log.warning(
                    "%s: %d faces found; ranked face %d (faces are numbered from 0, largest "
                    "first); choose another with --face",
                    path,
                    n_faces,
                    d.face_index,
                )
            out = diagnosis_json(d, diagnoser, case_id=case_id, top_k=args.top_k, demo=cfg.is_demo)
            out["gmx"]["photo"] = str(path)
            results.append(out)
            ranked.append((case_id, d.ranking))
        gallery_version = diagnoser.gallery.version
    if args.format == "json":
        json.dump(results[0] if len(results) == 1 else results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return status
    for r in results:
        if "error" in r:
            log.error("%s: %s", r["photo"], r["error"])
    if args.format == "phenopacket":
        sys.stdout.write(
            _phenopackets(ranked, gallery_version, args.hpo, top_k=args.top_k, demo=cfg.is_demo)
        )
    else:
        sys.stdout.write(_gene_tables(ranked, top_k=args.top_k, demo=cfg.is_demo))
    return status


def _phenopackets(
    ranked: Sequence[tuple[str, Ranking]],
    gallery_version: str,
    hpo_ids: Sequence[str],
    *,
    top_k: int,
    demo: bool,
) -> str:
    """One Phenopacket's JSON, or a JSON list of them for several photos."""
    from gmx.gallery import to_phenopacket_json

    packets = [
        to_phenopacket_json(
            ranking,
            case_id=case_id,
            gallery_version=gallery_version,
            hpo_ids=hpo_ids,
            top_k=top_k,
            demo=demo,
        )
        for case_id, ranking in ranked
    ]
    if len(packets) == 1:
        return packets[0] + "\n"
    return json.dumps([json.loads(p) for p in packets], indent=2) + "\n"


def _gene_tables(ranked: Sequence[tuple[str, Ranking]], *, top_k: int, demo: bool) -> str:
    """The gene tables of the photos, stacked, with a first ``case_id`` column (header written once)."""
    from gmx.gallery import to_gene_tsv

    parts = []
    for k, (case_id, ranking) in enumerate(ranked):
        lines = to_gene_tsv(ranking, top_k=top_k, demo=demo, case_id=case_id).splitlines(True)
        head = 2 if demo else 1  # the demo line and the header, written once
        parts.extend(lines if k == 0 else lines[head:])
    return "".join(parts)


# ------------------------------------------------------------------------------------- gallery
def _find_image(directory: Path, image_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = directory / f"{image_id}{suffix}"
        if p.is_file():
            return p
    matches = sorted(
        p for p in directory.glob(f"{image_id}_*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return matches[0] if matches else None


def _align_listed(images, directory: Path, desc: str):
    """Align the listed gallery/test images found in ``directory``; returns kept rows + faces."""
    from gmx.align import FaceAligner

    kept, faces, problems = [], [], []
    with FaceAligner() as aligner:
        for im in progress_bar(desc, images):
            path = _find_image(directory, im.image_id)
            if path is None:
                problems.append(f"{im.image_id}: no image file in {directory}")
                continue
            face, why = _primary_face(aligner, path)
            if face is None:
                problems.append(f"{im.image_id}: {why}")
                continue
            kept.append(im)
            faces.append(face)
    for line in problems[:20]:
        log.warning("skipped %s", line)
    if len(problems) > 20:
        log.warning("... and %d more skipped images", len(problems) - 20)
    return kept, faces, problems


def cmd_gallery_build(args: argparse.Namespace) -> int:
    from gmx.gallery import build_gallery, import_gmdb, save_gallery

    output_file(Path(args.out))
    cfg = configured(args)
    tables = import_gmdb(args.gmdb, args.version, split="gallery", kind=args.kind)
    images = tables.images()
    kept, faces, problems = _align_listed(images, Path(args.images), "align gallery")
    if not kept:
        log.error("none of the %d listed images could be aligned", len(images))
        return 1
    ensemble = _ensemble(cfg)
    bar = progress_bar("embed gallery", total=len(kept))
    # build_gallery encodes the photos with the chosen codec and embeds the decoded pixels, so the
    # stored embeddings are those of exactly the stored photos (FaceRecogNet members read the grey
    # crop derived from them, as the similarity maps do).
    gallery = build_gallery(
        args.name or f"GMDB {tables.version or 'gallery'} ({args.kind})",
        tables.version or "unversioned",
        kept,
        tables.syndromes_of(kept),
        ensemble.embed,
        np.stack([f.image for f in faces]),
        ensemble.variants,
        ensemble.fingerprint,
        progress=bar_callback(bar),
        keep_photos=not args.no_photos,
        photos_visible=args.photos_visible,
        provenance=f"gmx {__version__} gallery build from {args.gmdb}",
        photo_codec=args.photo_codec,
        photo_quality=args.photo_quality,
    )
    bar.close()
    if args.activations:
        from gmx.similarity import gallery_activations, with_activations

        bar = progress_bar("gallery activations", total=len(kept))
        gallery = with_activations(
            gallery, gallery_activations(ensemble, gallery, progress=bar_callback(bar))
        )
        bar.close()
    save_gallery(gallery, args.out)
    log.info(
        "gallery %s: %d images, %d syndromes, %d skipped",
        args.out,
        len(kept),
        len(gallery.syndromes),
        len(problems),
    )
    return 0


def cmd_gallery_import(args: argparse.Namespace) -> int:
    from gmx.gallery import gallery_from_encodings, import_gmdb, read_encodings, save_gallery

    output_file(Path(args.out))
    cfg = configured(args)
    ensemble = _ensemble(cfg)
    table = read_encodings(args.encodings, allow_pickle=args.allow_pickle)
    if tuple(table.variants) != tuple(ensemble.variants):
        log.error(
            "the encodings have variants %s but the given models/TTA give %s: pass the same models "
            "(in the same order) and TTA flags that made the encodings",
            [v.label for v in table.variants],
            [v.label for v in ensemble.variants],
        )
        return 2
    tables = import_gmdb(args.gmdb, args.version, split="gallery", kind=args.kind)
    images = tables.images()
    gallery = gallery_from_encodings(
        args.name or f"GMDB {tables.version or 'gallery'} ({args.kind}, imported encodings)",
        tables.version or "unversioned",
        images,
        tables.syndromes_of(images),
        table,
        ensemble.fingerprint,
        missing="drop" if args.drop_missing else "error",
        provenance=f"gmx {__version__}: {args.encodings} + {args.gmdb}",
    )
    save_gallery(gallery, args.out)
    log.info(
        "gallery %s: %d images, %d syndromes", args.out, len(gallery.images), len(gallery.syndromes)
    )
    return 0


def cmd_gallery_info(args: argparse.Namespace) -> int:
    from gmx.gallery import gallery_info

    info = gallery_info(args.gallery_file)
    report: dict[str, object] = {
        k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
        for k, v in info.__dict__.items()
    }
    status = 0
    if args.verify:
        verify, status = _verify_gallery(args)
        verify["metadata_checksum"] = info.metadata_checksum
        if info.metadata_checksum == "absent":  # an older file: said, not refused
            log.warning(
                "%s has no metadata checksum (written by an older gmx): its syndrome names and "
                "labels cannot be checked; load and save it with this gmx to add one",
                args.gallery_file,
            )
        report["verify"] = verify
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return status


def _verify_gallery(args: argparse.Namespace) -> tuple[dict[str, object], int]:
    """Re-embed a sample of the stored photos with the configured models (``info --verify``)."""
    from gmx.gallery import CONSISTENT_COSINE, check_compatible, load_gallery, verify_embeddings

    cfg = configured(args)
    ensemble = _ensemble(cfg)
    gallery = load_gallery(args.gallery_file)
    check_compatible(ensemble, gallery)
    sample = None if args.sample == 0 else args.sample
    check = verify_embeddings(gallery, ensemble.embed, sample=sample, seed=args.seed)
    ok = check.consistent()
    result = {
        "images_checked": len(check.indices),
        "worst_cosine": check.worst_cosine,
        "worst_image_id": check.worst_image_id,
        "threshold": CONSISTENT_COSINE,
        "consistent": ok,
    }
    say = log.info if ok else log.error
    say(
        "re-embedded %d stored photos: worst cosine %.7f (image %s), %s",
        len(check.indices),
        check.worst_cosine,
        check.worst_image_id,
        "consistent"
        if ok
        else f"below {CONSISTENT_COSINE}: the stored photos are not the embedded pixels",
    )
    return result, 0 if ok else 1


def cmd_gallery_export(args: argparse.Namespace) -> int:
    from gmx.gallery import load_gallery, write_encodings

    output_file(Path(args.out))
    write_encodings(load_gallery(args.gallery_file), args.out)
    log.info("wrote %s", args.out)
    return 0


# ------------------------------------------------------------------------------------ evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from gmx.gallery import evaluate as evaluate_ranking
    from gmx.gallery import import_gmdb, load_gallery

    cfg = configured(args)
    ensemble = _ensemble(cfg)
    gallery = load_gallery(cfg.gallery_path, expected_fingerprint=ensemble.fingerprint)
    tables = import_gmdb(args.gmdb, args.version, split="all", kind=args.kind)
    sources = [s for s in tables.sources if s.endswith("_test")]
    images = tables.images(sources)
    kept, faces, problems = _align_listed(images, Path(args.images), "align test")
    if not kept:
        log.error("none of the %d test images could be aligned", len(images))
        return 1
    queries = ensemble.embed(faces)
    ev = evaluate_ranking(
        queries,
        [im.syndrome_id for im in kept],
        gallery,
        ks=(1, 5, 10, 30),
        query_subjects=[im.subject_id for im in kept],
    )
    json.dump(
        {
            "n_queries": len(kept),
            "skipped": len(problems),
            "macro_top_k": {str(k): float(v) for k, v in ev.macro.items()},
            "micro_top_k": {str(k): float(v) for k, v in ev.micro.items()},
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")
    return 0


# ---------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gmx``."""
    parser = argparse.ArgumentParser(
        prog="gmx", description="GestaltMatcher explainability explorer (command line)."
    )
    parser.add_argument("--version", action="version", version=f"gmx {__version__}")
    parser.add_argument("--device", help="auto (default), cpu, cuda[:N] or mps")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], help="encoder arithmetic (default fp32)"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug messages, and the start-up lines of MediaPipe/LiteRT (hidden by default)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("align", help="align photos to the 112x112 ArcFace template (PNG + JSON)")
    p.add_argument("photos", nargs="+", type=Path, help="photos or folders of photos")
    p.add_argument("--out", type=Path, required=True, help="folder for the aligned faces")
    p.add_argument("--max-faces", type=int, default=1, help="faces to find per photo (default 1)")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("encode", help="embed photos; write a GestaltMatcher-Arc encodings CSV")
    p.add_argument("photos", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True, help="encodings CSV to write")
    add_model_args(p, gallery=False)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("predict", help="rank syndromes for photos (GestaltMatcher service JSON)")
    p.add_argument("photos", nargs="+", type=Path)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument(
        "--format",
        choices=list(PREDICT_FORMATS),
        default=PREDICT_FORMATS[0],
        help="json: the GestaltMatcher service JSON (default); phenopacket: a GA4GH Phenopacket v2 "
        "(JSON) with the candidate syndromes and the --hpo terms; genes-tsv: the ranked genes as a "
        "tab-separated table for variant prioritisation (docs/exports.md)",
    )
    add_hpo_arg(
        p,
        "--hpo",
        "a confirmed HPO term of the patient, for --format phenopacket (repeat for more)",
    )
    p.add_argument("--face", type=int, default=0, help="which face of the photo (0 = largest)")
    add_min_distance_arg(p)
    add_model_args(p)
    p.set_defaults(func=cmd_predict)

    g = sub.add_parser("gallery", help="build, inspect and export galleries")
    gsub = g.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    p = gsub.add_parser("build", help="align + embed a GMDB-layout gallery with the given models")
    p.add_argument("--gmdb", type=Path, required=True, help="GMDB metadata folder (csv/tsv files)")
    p.add_argument("--images", type=Path, required=True, help="folder with the gallery photos")
    p.add_argument("--version", default=None, help="GMDB release suffix, e.g. v1.0.3")
    p.add_argument("--kind", choices=["frequent", "rare", "both"], default="both")
    p.add_argument("--out", type=Path, required=True, help="gallery .sqlite to write")
    p.add_argument("--name", default=None)
    p.add_argument("--no-photos", action="store_true", help="do not store the aligned photos")
    p.add_argument("--photos-visible", action="store_true", help="allow the app to show photos")
    p.add_argument(
        "--photo-codec",
        choices=["raw", "png", "webp"],
        default="raw",
        help="how photos are stored (embeddings are always of the stored pixels; default raw)",
    )
    p.add_argument(
        "--photo-quality", type=int, default=95, help="WebP quality 0-100 (100 = lossless)"
    )
    p.add_argument(
        "--activations",
        action="store_true",
        help="store every variant's last feature maps (float16) so similarity maps need no "
        "gallery forward pass (size: N x variants x C x 7 x 7 x 2 bytes)",
    )
    add_model_args(p, gallery=False)
    p.set_defaults(func=cmd_gallery_build)
    p = gsub.add_parser(
        "import",
        help="gallery from GMDB metadata + a GestaltMatcher-Arc encodings file (no photos)",
    )
    p.add_argument("--gmdb", type=Path, required=True, help="GMDB metadata folder")
    p.add_argument(
        "--encodings", type=Path, required=True, help="all_encodings.csv (';' separated)"
    )
    p.add_argument("--version", default=None)
    p.add_argument("--kind", choices=["frequent", "rare", "both"], default="both")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--drop-missing", action="store_true", help="skip images without an encoding")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read a pickled DataFrame encodings file (only from a source you trust)",
    )
    add_model_args(p, gallery=False)
    p.set_defaults(func=cmd_gallery_import)
    p = gsub.add_parser(
        "info", help="what a gallery file holds (metadata only; --verify re-embeds stored photos)"
    )
    p.add_argument("gallery_file", type=Path)
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-embed a sample of the stored photos with --models and report the worst cosine "
        "with the stored embeddings (exit 1 below 0.99999)",
    )
    p.add_argument(
        "--sample", type=int, default=100, help="images to re-embed with --verify (0 = all)"
    )
    p.add_argument("--seed", type=int, default=0, help="of the --verify sample")
    add_model_args(p, gallery=False)
    p.set_defaults(func=cmd_gallery_info)
    p = gsub.add_parser("export", help="write a gallery's embeddings as a GestaltMatcher-Arc CSV")
    p.add_argument("gallery_file", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_gallery_export)
    from gmx.gallery.cli import add_parser as add_calibrate_parser

    add_calibrate_parser(gsub)

    p = sub.add_parser("evaluate", help="macro top-1/5/10/30 on a GMDB-layout test split")
    p.add_argument("--gmdb", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--version", default=None)
    p.add_argument("--kind", choices=["frequent", "rare", "both"], default="frequent")
    add_model_args(p)
    p.set_defaults(func=cmd_evaluate)

    # Imported here: gmx.aggregate loads torch, which `gmx --help` does not need.
    from gmx.aggregate.cli import add_parser as add_batch_parser

    add_batch_parser(sub)
    from gmx.shared_cli import add_parser as add_shared_parser

    add_shared_parser(sub)
    from gmx.study.cli import add_parser as add_study_parser

    add_study_parser(sub)
    from gmx.report.cli import add_parser as add_report_parser

    add_report_parser(sub)
    from gmx.metrics.cli import add_parser as add_scorecard_parser

    add_scorecard_parser(sub)
    from gmx.metrics.pairs_cli import add_parser as add_scorecard_pairs_parser

    add_scorecard_pairs_parser(sub)
    from gmx.serve.cli import add_parser as add_serve_parser

    add_serve_parser(sub)
    from gmx.app_cli import add_parser as add_app_parser

    add_app_parser(sub)
    return parser


#: Lines that native libraries (MediaPipe's glog/absl, LiteRT, TFLite) write to file descriptor 2
#: and that stay visible without ``-v``: errors and fatal messages. Their start-up chatter
#: ("INFO: Created TensorFlow Lite XNNPACK delegate", "W0000 ... Feedback manager ...") is dropped.
_NATIVE_ERROR_LINE = re.compile(
    rb"^(?:[EF]\d{4} |E\d{4}|F\d{4}|ERROR|FATAL|Check failed|terminate called)"
)


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Drop what native libraries write to file descriptor 2, except error lines, in this block.

    MediaPipe's C++ code logs through glog/absl and LiteRT straight to fd 2, ignoring Python's
    logging and the usual environment variables (measured: ``GLOG_minloglevel``,
    ``GOOGLE_STDERRTHRESHOLD`` and ``TF_CPP_MIN_LOG_LEVEL`` change nothing with mediapipe's
    bundled build), from its own threads and also after landmarker creation (first inference,
    close). So fd 2 is pointed at a pipe for the whole block; a thread forwards the lines matching
    :data:`_NATIVE_ERROR_LINE` at once (so a crash still shows its reason), and ``sys.stderr`` is
    moved to a copy of the original descriptor so Python's own messages (logging, progress bars,
    warnings) are unaffected. Process-wide: meant for the command line, not a server.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    python_stderr = open(  # noqa: SIM115 - closed in the finally below
        os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace"
    )

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if _NATIVE_ERROR_LINE.match(line):
                    try:
                        os.write(saved, line)
                    except OSError:  # the block has ended and closed the descriptor
                        return

    thread = threading.Thread(target=forward, name="gmx-native-stderr", daemon=True)
    thread.start()
    original = sys.stderr
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = python_stderr
    try:
        yield
    finally:
        python_stderr.flush()
        sys.stderr = original
        os.dup2(saved, 2)  # drops the pipe's last write end: the thread reads EOF and ends
        thread.join(timeout=5)
        python_stderr.close()
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gmx`` command.

    Without ``-v`` the start-up lines of MediaPipe/LiteRT are hidden (see
    :func:`quiet_native_stderr`); ``-v`` shows them and gmx's debug messages.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if not args.verbose:
            stack.enter_context(quiet_native_stderr())
        root = logging.getLogger()
        if not root.handlers:  # as logging.basicConfig, but removed again on return
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
            root.addHandler(handler)
            root.setLevel(logging.INFO)
            stack.callback(root.removeHandler, handler)
        if args.verbose:  # gmx's own debug messages, not every library's
            previous = log.level
            log.setLevel(logging.DEBUG)
            stack.callback(log.setLevel, previous)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from gmx.errors import GmxError

    try:
        return int(args.func(args))
    except (GmxError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:  # e.g. the disk filled up while writing
        log.debug("OS error", exc_info=True)
        where = f" {exc.filename}" if exc.filename else ""
        log.error("cannot read or write%s: %s", where, _os_reason(exc))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
