"""Build the embedded demo data set: cohort plan, generation, GMDB-layout splits, artifacts.

``python -m gmx.synth build --out models/demo --seed 0`` runs :func:`build_demo`. Everything random
comes from ``numpy.random.SeedSequence`` children of the seed, one per patient (``[seed, 0, i]``),
so generating patient ``i`` alone gives exactly what the full build gives for it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmx.synth.generate import Aligner, Renderer, SynthFace, SynthImage, photograph, sample_face
from gmx.synth.render import sample_photo_params
from gmx.synth.sources import PACKAGES, SourceBank, bank_key, build_bank, load_bank, save_bank
from gmx.synth.syndromes import SYNDROMES, SyntheticSyndrome, all_classes

log = logging.getLogger(__name__)

#: Release suffix of the GMDB-layout files (``gmdb_train_images_<DATA_VERSION>.csv`` ...).
DATA_VERSION = "synth1.0"
#: Probabilities of 1..6 photos per patient (mean about 2.5).
IMAGES_PER_PATIENT_P: tuple[float, ...] = (0.35, 0.25, 0.15, 0.12, 0.08, 0.05)
#: Fractions of each frequent syndrome's patients put in the test and validation sets.
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
#: Number of random gallery/test splits of the rare set (GMDB: 10).
RARE_SPLITS = 10
#: WebP quality of the stored aligned images.
WEBP_QUALITY = 90

FACES_FILE = "synth_faces.npz"
METADATA_FILE = "synth_metadata.csv"
SUBJECTS_FILE = "synth_subjects.csv"
SOURCES_FILE = "synth_sources.csv"
FEATURES_FILE = "synth_features.tsv"
MANIFEST_FILE = "synth_manifest.json"
UNAFFECTED_FILE = f"synth_unaffected_images_{DATA_VERSION}.csv"
LOOKUP_FILE = f"lookup_table_gmdb_{DATA_VERSION}.txt"


def gmdb_file(kind: str) -> str:
    """File name of a GMDB-layout list (``train``, ``frequent_gallery``, ``syndromes`` ...)."""
    ext = "tsv" if kind == "syndromes" else "csv"
    stem = "gmdb_syndromes" if kind == "syndromes" else f"gmdb_{kind}_images"
    return f"{stem}_{DATA_VERSION}.{ext}"


@dataclass(frozen=True)
class PatientPlan:
    """One planned patient.

    Attributes:
        index: position in the cohort (seeds its generator).
        subject_id: GMDB-style subject id (digits).
        syndrome: its syndrome or the unaffected cohort.
        n_images: photos to take.
    """

    index: int
    subject_id: str
    syndrome: SyntheticSyndrome
    n_images: int


def plan_cohort(seed: int) -> tuple[PatientPlan, ...]:
    """Every patient of the demo: table order, ``patients`` per class, photos per patient drawn."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    plans: list[PatientPlan] = []
    for syn in all_classes():
        for _ in range(syn.patients):
            n = int(rng.choice(np.arange(1, len(IMAGES_PER_PATIENT_P) + 1), p=IMAGES_PER_PATIENT_P))
            i = len(plans)
            plans.append(PatientPlan(i, str(1001 + i), syn, n))
    return tuple(plans)


def patient_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of patient ``index``."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0, index]))


@dataclass(frozen=True)
class PatientResult:
    """A generated patient: the canonical face and its photos (``None`` where alignment failed)."""

    plan: PatientPlan
    face: SynthFace
    images: tuple[SynthImage | None, ...]
    failures: tuple[str, ...]


def generate_patient(
    renderer: Renderer, plan: PatientPlan, seed: int, aligner: Aligner
) -> PatientResult:
    """Identity, features and all photos of one planned patient (deterministic for the seed)."""
    rng = patient_rng(seed, plan.index)
    face = sample_face(renderer, plan.syndrome, rng)
    images: list[SynthImage | None] = []
    failures: list[str] = []
    for _ in range(plan.n_images):
        img, why = photograph(face, sample_photo_params(rng), aligner)
        images.append(img)
        if why is not None:
            failures.append(why)
    return PatientResult(plan, face, tuple(images), tuple(failures))


# ----------------------------------------------------------------------------------------------
# Splits


def assign_splits(
    subjects: Sequence[tuple[str, SyntheticSyndrome]], seed: int
) -> tuple[dict[str, str], dict[int, set[str]]]:
    """Split subjects GMDB-style.

    Frequent syndromes: per syndrome, ``TEST_FRACTION`` of the subjects (at least one) go to
    ``test``, ``VAL_FRACTION`` (at least one) to ``val``, the rest to ``train``. Rare syndromes:
    ``rare``; in each of ``RARE_SPLITS`` splits half of each rare syndrome's subjects (rounded down,
    at least one) are test subjects, the others gallery. Unaffected: ``unaffected``.

    Args:
        subjects: ``(subject_id, syndrome)`` of every subject with at least one image.
        seed: build seed.

    Returns:
        subject -> split, and rare split index -> test subjects.
    """
    by_syn: dict[str, list[str]] = {}
    syn_of: dict[str, SyntheticSyndrome] = {}
    for sid, syn in subjects:
        by_syn.setdefault(syn.syndrome_id, []).append(sid)
        syn_of[syn.syndrome_id] = syn
    split: dict[str, str] = {}
    rare_test: dict[int, set[str]] = {k: set() for k in range(RARE_SPLITS)}
    for k_syn, (syn_id, sids) in enumerate(sorted(by_syn.items())):
        syn = syn_of[syn_id]
        group = syn.group
        if group == "unaffected":
            split.update(dict.fromkeys(sids, "unaffected"))
        elif group == "frequent" and len(sids) >= 3:
            order = np.random.default_rng(np.random.SeedSequence([seed, 2, k_syn])).permutation(
                sids
            )
            n_test = max(1, round(TEST_FRACTION * len(sids)))
            n_val = max(1, round(VAL_FRACTION * len(sids)))
            for j, s in enumerate(order):
                split[str(s)] = "test" if j < n_test else ("val" if j < n_test + n_val else "train")
        else:
            split.update(dict.fromkeys(sids, "rare"))
            if len(sids) < 2:
                continue
            for k in range(RARE_SPLITS):
                order = np.random.default_rng(
                    np.random.SeedSequence([seed, 3, k_syn, k])
                ).permutation(sids)
                rare_test[k].update(str(s) for s in order[: max(1, len(sids) // 2)])
    return split, rare_test


# ----------------------------------------------------------------------------------------------
# Writing


def _webp(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="WEBP", quality=WEBP_QUALITY, method=6)
    return buf.getvalue()


def _write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], delimiter: str = ","
) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class BuildReport:
    """What a build produced.

    Attributes:
        out: output folder.
        n_images: images written.
        n_dropped: photos where alignment found no face.
        per_class: syndrome id -> (patients with images, images).
        seconds: wall time of the build.
        files: file name -> size in bytes.
    """

    out: Path
    n_images: int
    n_dropped: int
    per_class: dict[str, tuple[int, int]]
    seconds: float
    files: dict[str, int] = field(default_factory=dict)


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def write_artifacts(
    out: Path, results: Sequence[PatientResult], bank: SourceBank, seed: int, extra: dict[str, Any]
) -> BuildReport:
    """Write every demo file (see docs/synth.md) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    image_ids: list[str] = []
    rows: list[tuple[str, PatientResult, SynthImage, int]] = []
    for res in results:
        for j, img in enumerate(res.images):
            if img is not None:
                image_ids.append(str(100001 + len(image_ids)))
                rows.append((image_ids[-1], res, img, j))
    with_images = [
        (r.plan.subject_id, r.plan.syndrome)
        for r in results
        if any(i is not None for i in r.images)
    ]
    split_of, rare_test = assign_splits(with_images, seed)

    # Arrays: WebP blobs + offsets, packed masks, transforms.
    blobs = [_webp(img.image) for _, _, img, _ in rows]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    masks = np.stack([img.mask for _, _, img, _ in rows]) if rows else np.zeros((0, 112, 112), bool)
    np.savez_compressed(
        out / FACES_FILE,
        webp=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
        masks=np.packbits(masks.reshape(len(rows), -1), axis=1),
        transforms=np.stack([img.transform for _, _, img, _ in rows]).astype(np.float32)
        if rows
        else np.zeros((0, 2, 3), np.float32),
        image_ids=np.array(image_ids, dtype="U16"),
    )

    # Per-image metadata.
    _write_csv(
        out / METADATA_FILE,
        ["image_id", "subject", "label", "group", "split", "photo_index", "mask_pixels", "photo"],
        (
            (iid, r.plan.subject_id, r.plan.syndrome.syndrome_id, r.plan.syndrome.group,
             split_of[r.plan.subject_id], j, int(img.mask.sum()), _json(img.params.to_dict()))
            for iid, r, img, j in rows
        ),
    )  # fmt: skip
    # Per-subject provenance (identity mixing, feature strengths).
    _write_csv(
        out / SUBJECTS_FILE,
        ["subject", "label", "split", "n_images", "sources", "weights", "shape_gain", "tone", "strengths"],
        (
            (r.plan.subject_id, r.plan.syndrome.syndrome_id, split_of.get(r.plan.subject_id, "dropped"),
             sum(i is not None for i in r.images),
             ";".join(str(int(s)) for s in r.face.identity.sources),
             ";".join(f"{w:.4f}" for w in r.face.identity.weights),
             f"{r.face.identity.shape_gain:.4f}", ";".join(f"{t:.4f}" for t in r.face.identity.tone),
             _json(dict(r.face.strengths)))
            for r in results
        ),
    )  # fmt: skip
    _write_csv(
        out / SOURCES_FILE,
        ["source_id", "origin", "member", "face", "iod"],
        ((f.source_id, f.origin, f.member, f.face, f.iod) for f in bank.faces),
    )
    from gmx.synth.features import FEATURES

    _write_csv(
        out / FEATURES_FILE,
        ["key", "hpo_id", "hpo_name", "region", "kind", "description"],
        ((f.key, f.hpo_id, f.hpo_name, f.region, f.kind, f.description) for f in FEATURES),
        delimiter="\t",
    )

    # GMDB layout.
    def img_rows(keep: Callable[[str], bool]) -> list[tuple[str, str, str]]:
        return [
            (iid, r.plan.subject_id, r.plan.syndrome.syndrome_id)
            for iid, r, _, _ in rows
            if keep(r.plan.subject_id)
        ]

    header = ["image_id", "subject", "label"]
    for kind, splits in (
        ("train", {"train"}),
        ("val", {"val"}),
        ("test", {"test"}),
        ("frequent_gallery", {"train", "val"}),
        ("frequent_test", {"test"}),
    ):
        _write_csv(
            out / gmdb_file(kind), header, img_rows(lambda s, sp=splits: split_of.get(s) in sp)
        )
    rare_rows = img_rows(lambda s: split_of.get(s) == "rare")
    _write_csv(
        out / gmdb_file("rare_gallery"),
        [*header, "split"],
        ((*row, k) for k in range(RARE_SPLITS) for row in rare_rows if row[1] not in rare_test[k]),
    )
    _write_csv(
        out / gmdb_file("rare_test"),
        [*header, "split"],
        ((*row, k) for k in range(RARE_SPLITS) for row in rare_rows if row[1] in rare_test[k]),
    )
    _write_csv(out / UNAFFECTED_FILE, header, img_rows(lambda s: split_of.get(s) == "unaffected"))
    _write_csv(
        out / gmdb_file("syndromes"),
        ["syndrome_id", "syndrome_name", "genes", "hpo", "features", "group", "patients", "OMIM"],
        ((s.syndrome_id, s.name, "", ",".join(s.hpo), ",".join(s.features), s.group, s.patients, "")
         for s in SYNDROMES),
        delimiter="\t",
    )  # fmt: skip
    frequent = [s.syndrome_id for s in SYNDROMES if s.group == "frequent"]
    (out / LOOKUP_FILE).write_text(
        "index_id to disorder_id\n" + json.dumps(frequent) + "\n", encoding="utf-8"
    )

    per_class: dict[str, tuple[int, int]] = {}
    counts = Counter(r.plan.syndrome.syndrome_id for _, r, _, _ in rows)
    for syn in all_classes():
        subj = {
            r.plan.subject_id
            for _, r, _, _ in rows
            if r.plan.syndrome.syndrome_id == syn.syndrome_id
        }
        per_class[syn.syndrome_id] = (len(subj), counts.get(syn.syndrome_id, 0))
    n_dropped = sum(len(r.failures) for r in results)
    files = sorted(
        p.name
        for p in out.iterdir()
        if p.name.startswith(("synth_", "gmdb_", "lookup_table_gmdb_"))
    )
    manifest = {
        "data_version": DATA_VERSION,
        "seed": seed,
        "n_images": len(rows),
        "n_subjects": len({r.plan.subject_id for _, r, _, _ in rows}),
        "n_photos_attempted": len(rows) + n_dropped,
        "n_dropped_no_face": n_dropped,
        "per_class": {k: {"subjects": v[0], "images": v[1]} for k, v in per_class.items()},
        "n_source_faces": len(bank),
        "packages": [f"{p.registry}:{p.name}=={p.version}" for p in PACKAGES],
        "files": {name: _sha256(out / name) for name in files if name != MANIFEST_FILE},
        **extra,
    }
    (out / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    sizes = {
        name: (out / name).stat().st_size
        for name in [*files, MANIFEST_FILE]
        if (out / name).exists()
    }
    return BuildReport(out, len(rows), n_dropped, per_class, 0.0, sizes)


# ----------------------------------------------------------------------------------------------
# Orchestration


AlignerFactory = Callable[[int], AbstractContextManager[Aligner]]
"""``max_faces -> aligner`` context manager."""


def default_aligner(max_faces: int = 1) -> AbstractContextManager[Aligner]:
    """The real alignment pipeline (:class:`gmx.align.FaceAligner`)."""
    from gmx.align import FaceAligner

    return FaceAligner(max_faces=max_faces)


def get_bank(cache: Path, aligner_factory: AlignerFactory = default_aligner) -> SourceBank:
    """The source bank, from the cache when it was built before with the same package list.

    Source photos are landmarked with ``aligner_factory(12)`` (group photos hold several faces).
    """
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bank-{bank_key()}.npz"
    if path.exists():
        return load_bank(path)
    with aligner_factory(12) as aligner:

        def landmarker(rgb: np.ndarray) -> list[np.ndarray]:
            return [np.asarray(f.landmarks_image, np.float64) for f in aligner.align(rgb).faces]

        bank = build_bank(landmarker, cache)
    save_bank(bank, path)
    return bank


def build_demo(
    out: Path,
    *,
    seed: int = 0,
    cache: Path,
    aligner_factory: AlignerFactory = default_aligner,
    limit: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Generate the whole demo data set into ``out``.

    Args:
        out: output folder (``models/demo``).
        seed: build seed.
        cache: download / source-bank cache folder (outside git).
        aligner_factory: ``max_faces -> aligner`` context manager (default: :class:`gmx.align.FaceAligner`).
        limit: only the first ``limit`` patients of every class (quick builds).
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    plans = plan_cohort(seed)
    if limit is not None:
        seen: Counter[str] = Counter()
        kept = []
        for p in plans:
            if seen[p.syndrome.syndrome_id] < limit:
                kept.append(p)
                seen[p.syndrome.syndrome_id] += 1
        plans = tuple(kept)
    bank = get_bank(cache, aligner_factory)
    t_bank = time.perf_counter() - t0
    renderer = Renderer.from_bank(bank)
    with aligner_factory(1) as aligner:
        results = [
            generate_patient(renderer, p, seed, aligner)
            for p in tqdm(plans, desc="synthetic patients", unit="patient", disable=not progress)
        ]
    t_gen = time.perf_counter() - t0 - t_bank
    report = write_artifacts(
        out,
        results,
        bank,
        seed,
        {"seconds_bank": round(t_bank, 1), "seconds_generate": round(t_gen, 1)},
    )
    seconds = time.perf_counter() - t0
    log.info("built %d images (%d dropped) in %.1f s", report.n_images, report.n_dropped, seconds)
    return BuildReport(
        report.out, report.n_images, report.n_dropped, report.per_class, seconds, report.files
    )


__all__ = [
    "DATA_VERSION",
    "BuildReport",
    "PatientPlan",
    "PatientResult",
    "assign_splits",
    "build_demo",
    "generate_patient",
    "gmdb_file",
    "patient_rng",
    "plan_cohort",
    "write_artifacts",
]
