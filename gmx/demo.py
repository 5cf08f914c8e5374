"""Build the embedded demo: train the demo model on the synthetic data, embed its gallery, evaluate.

One command reproduces ``models/demo/gmx-demo-iresnet.pt`` (+ ``.card.json``), ``gallery.sqlite`` and
``metrics.json`` from the committed synthetic data::

    python -m gmx.demo build --data models/demo --seed 0

``python -m gmx.demo calibrate`` (re)computes only the gallery's stored calibration: the held-out test
images (frequent test split + rare split-0 test images) against the gallery, and the unaffected
cohort's distances to their nearest syndrome (:func:`calibrate_demo`). The queries take the user's
path: each image's full photo is re-rendered (:func:`gmx.synth.examples.iter_held_out_photos`) and
aligned and embedded by the app's :class:`~gmx.pipeline.Diagnoser`, so the distances counted are the
distances the Diagnose page shows.

The model is a narrow iResNet of the GestaltMatcher-Arc family, trained from scratch with the upstream
fine-tuning recipe (see :mod:`gmx.train`) on the frequent syndromes' training split. Rare syndromes are
never trained on: like GMDB's rare set they are only in the gallery. The unaffected cohort is kept
out of training and gallery (it serves contrasts).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gmx import __version__
from gmx._io import atomic_write_text
from gmx.encode import (
    Ensemble,
    GestaltModel,
    default_card,
    iresnet,
    iresnet_architecture,
    load_model,
)
from gmx.encode import save_model as save_encoder
from gmx.gallery import (
    Calibration,
    Gallery,
    GalleryImage,
    PhotoCodec,
    Syndrome,
    build_gallery,
    calibrate_held_out,
    calibration_summary,
    evaluate,
    load_gallery,
    nearest_syndrome_distances,
    save_gallery,
)
from gmx.pipeline import MAX_FACES, Diagnoser
from gmx.synth.dataset import DemoData, load_demo_data, rare_split_ids
from gmx.train import (
    EpochLog,
    TrainConfig,
    macro_topk_from_logits,
    predict_logits,
    train_classifier,
)

log = logging.getLogger(__name__)

MODEL_NAME = "gmx-demo-iresnet"
#: The data-randomisation control (Adebayo et al. 2018): the demo recipe on the training split's
#: labels permuted with a seed, trained briefly (:data:`SHUFFLED_EPOCHS`).
SHUFFLED_MODEL_NAME = "gmx-demo-iresnet-shuffled"
#: Epochs of the shuffled-label control: a short run (the real model has 60) that fits a loaded
#: 2-core CPU; ``--epochs N`` trains longer. docs/metrics.md says it is shorter than the recipe.
SHUFFLED_EPOCHS = 1
GALLERY_NAME = "gmx synthetic demo gallery"
PHOTO_CODEC: PhotoCodec = "webp"
PHOTO_QUALITY = 92
CLINICAL_STATEMENT = (
    "Synthetic demo, not for clinical use: trained and evaluated only on synthetic phenotypes."
)
TRAIN_SPLITS = ("train",)
VAL_SPLITS = ("val",)
FREQUENT_GALLERY_SPLITS = ("train", "val")
FREQUENT_TEST_SPLIT = "test"
#: Synth marks rare syndromes' rows with split ``rare``; the GMDB-layout files split them 10 ways
#: (GestaltMatcher-Arc's rare protocol). The demo gallery uses rare split 0.
RARE_SPLIT = "rare"
UNAFFECTED = "SYN:0000"

#: Where the calibration's query distances come from: ``"photo"`` (the user's path: re-rendered
#: full photo -> MediaPipe alignment -> ensemble, as the Diagnose page) or ``"crop"`` (the committed
#: 112x112 crops, aligned with the generator's reference transform).
QuerySource = Literal["photo", "crop"]
PHOTO_PATH_PROVENANCE = (
    "queries on the user's path: each image's full photo re-rendered (gmx.synth.examples, JPEG "
    "quality 90), aligned by MediaPipe and embedded by the app's Diagnoser (largest face)"
)
CROP_PATH_PROVENANCE = "queries = the committed 112x112 crops (the generator's reference alignment)"
#: The photo path costs 1.8-2.4 s per photo on a loaded 2-core CPU (all 555 held-out + unaffected
#: images 17-22 min), so the stored demo calibration uses a seeded stratified subset
#: (:func:`photo_subset`): this fraction of each syndrome's held-out images (rounded up), one image
#: per unaffected person, plus every demo example photo.
PHOTO_SUBSET_FRACTION = 0.5


@dataclass(frozen=True)
class DemoBuild:
    """What :func:`build_demo` produced."""

    model_path: Path
    gallery_path: Path
    metrics: dict[str, object]


def _syndrome_table(data: DemoData) -> dict[str, Syndrome]:
    return {
        s.syndrome_id: Syndrome(
            syndrome_id=s.syndrome_id, name=s.name, omim=None, genes=(), hpo=tuple(s.hpo)
        )
        for s in data.syndromes
        if s.syndrome_id != UNAFFECTED
    }


def _device_description(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA)"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def train_demo_model(
    data: DemoData,
    cfg: TrainConfig,
    out_path: Path,
    *,
    progress: Callable[[EpochLog], None] | None = None,
    device: str = "cpu",
    shuffle_labels: int | None = None,
) -> tuple[Path, dict[str, object]]:
    """Train on the frequent syndromes' train split, save in gmx format, return path and metrics.

    ``shuffle_labels``: a seed; the training labels are permuted with it first (the data
    randomisation control: same images, same class counts, labels unrelated to the faces). The
    validation and test accuracies are measured against the true labels (about chance).
    """
    classes = sorted(
        {lab for lab, sp in zip(data.labels, data.splits, strict=True) if sp in TRAIN_SPLITS}
    )
    index = {c: i for i, c in enumerate(classes)}
    train = data.select(np.isin(data.splits, TRAIN_SPLITS))
    val = data.select(np.isin(data.splits, VAL_SPLITS) & np.isin(data.labels, classes))
    y_train = np.array([index[c] for c in train.labels])
    if shuffle_labels is not None:
        y_train = shuffled_labels(y_train, shuffle_labels)
    y_val = np.array([index[c] for c in val.labels])
    result = train_classifier(
        train.images,
        y_train,
        len(classes),
        cfg,
        build_backbone=lambda c: iresnet(c.layers, c.widths, c.embedding_dim),
        val=(val.images, y_val),
        progress=progress,
        device=device,
    )
    test = data.select((data.splits == FREQUENT_TEST_SPLIT) & np.isin(data.labels, classes))
    y_test = np.array([index[c] for c in test.labels])
    clf_topk = macro_topk_from_logits(
        predict_logits(result.backbone, result.classifier, test.images), y_test, ks=(1, 5)
    )
    linear = result.classifier[1]
    model = GestaltModel(result.backbone, linear)
    shuffled = {} if shuffle_labels is None else {"labels_shuffled_with_seed": shuffle_labels}
    card = default_card(
        name=MODEL_NAME if shuffle_labels is None else SHUFFLED_MODEL_NAME,
        architecture=iresnet_architecture(cfg.layers, cfg.widths),
        embedding_dim=cfg.embedding_dim,
        classes=tuple(classes),
        version=f"synth-{cfg.seed}",
        source_format="gmx",
        notes=json.dumps(
            {
                "data": "gmx synthetic-phenotype demo (models/demo, see docs/synth.md)",
                "recipe": "class-weighted softmax CE, Dropout(0.5)->Linear head, AdamW + one-cycle, "
                "flip/colour-jitter/grey/affine augmentation (gmx.train)",
                "train_config": cfg.as_dict(),
                "trained_on": _device_description(device),
                "torch": torch.__version__,
                "train_seconds": round(result.seconds, 1),
                "classifier_macro_top1_test": round(clf_topk[1], 4),
                "classifier_macro_top5_test": round(clf_topk[5], 4),
                "final_epoch": result.history[-1].__dict__,
                **shuffled,
            }
        ),
        clinical_use_statement=CLINICAL_STATEMENT,
    )
    save_encoder(model, card, out_path)
    return out_path, {
        "train_seconds": result.seconds,
        "epochs": [e.__dict__ for e in result.history],
        "classifier_macro_topk_test": clf_topk,
    }


def shuffled_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    """``labels`` permuted with a seeded generator (same multiset, order unrelated to the rows)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    return np.asarray(labels)[rng.permutation(len(labels))]


def build_demo_gallery(
    data: DemoData,
    ensemble: Ensemble,
    directory: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Gallery:
    """Gallery = frequent syndromes' train+val images and the rare syndromes' gallery images.

    The photos are stored as WebP (quality :data:`PHOTO_QUALITY`) and embedded after the WebP round
    trip (:func:`~gmx.gallery.build_gallery`'s ``photo_codec``), so the stored embeddings are those
    of exactly the stored pixels.
    """
    rare_ids = rare_split_ids(directory, "gallery")
    keep = np.isin(data.splits, FREQUENT_GALLERY_SPLITS) | np.isin(data.image_ids, list(rare_ids))
    keep &= data.labels != UNAFFECTED
    sel = data.select(keep)
    images = [
        GalleryImage(image_id=str(i), subject_id=str(s), syndrome_id=str(lab), split=None)
        for i, s, lab in zip(sel.image_ids, sel.subject_ids, sel.labels, strict=True)
    ]
    return build_gallery(
        GALLERY_NAME,
        f"synth-{__version__}",
        images,
        _syndrome_table(data),
        ensemble.embed,
        sel.images,
        ensemble.variants,
        ensemble.fingerprint,
        progress=progress,
        keep_photos=True,
        photos_visible=True,
        extras={"gt_mask": sel.masks},
        description="Synthetic patients with known causal facial regions (extras['gt_mask']). "
        "Not real people; not for clinical use.",
        provenance=f"gmx.demo {__version__}; data {directory}",
        photo_codec=PHOTO_CODEC,
        photo_quality=PHOTO_QUALITY,
    )


def evaluate_demo(
    data: DemoData, ensemble: Ensemble, gallery: Gallery, directory: Path
) -> dict[str, object]:
    """Macro top-1/5/10/30 on the frequent test split and on rare split 0's test images."""
    out: dict[str, object] = {}
    cases = {
        "frequent_test": data.splits == FREQUENT_TEST_SPLIT,
        "rare_test_split0": np.isin(data.image_ids, list(rare_split_ids(directory, "test"))),
    }
    for name, mask in cases.items():
        sel = data.select(mask)
        if len(sel) == 0:
            continue
        queries = ensemble.embed(sel.images)
        ev = evaluate(
            queries,
            list(sel.labels),
            gallery,
            ks=(1, 5, 10, 30),
            query_subjects=list(sel.subject_ids),
        )
        out[name] = {
            "n_images": len(sel),
            "n_syndromes": len(set(sel.labels)),
            "macro": {str(k): round(float(v), 4) for k, v in ev.macro.items()},
            "micro": {str(k): round(float(v), 4) for k, v in ev.micro.items()},
        }
    return out


@dataclass(frozen=True)
class PhotoQueries:
    """Embeddings of photos on the user's path (:func:`photo_path_embeddings`).

    Attributes:
        image_ids: the photos a face was found in, in input order.
        embeddings: ``(len(image_ids), V, D)`` float32, what :meth:`Diagnoser.rank_face` ranks.
        no_face: image ids of photos the aligner found no face in (not counted).
    """

    image_ids: tuple[str, ...]
    embeddings: np.ndarray
    no_face: tuple[str, ...]


def photo_path_embeddings(
    diagnoser: Diagnoser, photos: Iterable[tuple[str, bytes]], n_variants: int, dim: int
) -> PhotoQueries:
    """Align each photo (bytes, as an upload) with ``diagnoser`` and embed its largest face exactly
    as :meth:`~gmx.pipeline.Diagnoser.diagnose` does (face 0, one face per call)."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    no_face: list[str] = []
    for image_id, photo in photos:
        alignment, _ = diagnoser.align(photo)
        if not alignment.faces:
            no_face.append(image_id)
            continue
        ids.append(image_id)
        rows.append(diagnoser.ensemble.embed([alignment.faces[0]])[0])
    emb = np.stack(rows) if rows else np.zeros((0, n_variants, dim), np.float32)
    return PhotoQueries(tuple(ids), emb, tuple(no_face))


def held_out_ids(data: DemoData, directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """Masks over ``data``: the held-out query images (frequent test + rare split-0 test) and the
    unaffected cohort."""
    held = (data.splits == FREQUENT_TEST_SPLIT) | np.isin(
        data.image_ids, list(rare_split_ids(directory, "test"))
    )
    return held, data.labels == UNAFFECTED


def photo_subset(
    data: DemoData, directory: Path, *, fraction: float = PHOTO_SUBSET_FRACTION, seed: int = 0
) -> tuple[frozenset[str], str]:
    """Image ids of the seeded stratified subset the demo calibration renders, and its description.

    Held-out images: ``ceil(fraction * n)`` of each syndrome's (a seeded draw); unaffected: one image
    per person (a seeded draw); plus every demo example photo's image (what users try first).
    """
    from gmx.synth.examples import example_image_ids

    held, un = held_out_ids(data, directory)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 12]))
    keep: set[str] = set(example_image_ids(directory).values())
    n_examples = len(keep)
    for syn in sorted(set(data.labels[held])):
        rows = np.flatnonzero(held & (data.labels == syn))
        k = int(np.ceil(fraction * len(rows)))
        keep.update(str(data.image_ids[r]) for r in rng.choice(rows, k, replace=False))
    for person in sorted(set(data.subject_ids[un])):
        rows = np.flatnonzero(un & (data.subject_ids == person))
        keep.add(str(data.image_ids[rng.choice(rows)]))
    n_held = int(np.isin(data.image_ids[held], list(keep)).sum())
    n_un = int(np.isin(data.image_ids[un], list(keep)).sum())
    text = (
        f"seeded stratified subset (seed {seed}): {n_held} of {int(held.sum())} held-out images "
        f"(ceil({fraction:g} x) each syndrome's) and {n_un} of {int(un.sum())} unaffected images "
        f"(one per person), the {n_examples} demo example photos always included"
    )
    return frozenset(keep), text


def calibrate_demo(
    data: DemoData,
    ensemble: Ensemble,
    gallery: Gallery,
    directory: Path,
    *,
    source: QuerySource = "photo",
    subset: tuple[frozenset[str], str] | None = None,
    seed: int = 0,
    cache: Path | None = None,
) -> Calibration:
    """The demo gallery's calibration from its held-out splits and its unaffected cohort.

    Counted queries: the frequent syndromes' test split and the rare syndromes' split-0 test images
    (the images :func:`evaluate_demo` ranks; none is in the gallery), each against the whole
    gallery. Unaffected: every image of the unaffected cohort (``SYN:0000``, never trained on, not
    in the gallery), its distance to the nearest gallery image.

    Args:
        source: ``"photo"`` (default): each image's full photo is re-rendered (build ``seed``,
            source bank in ``cache``) and goes through the app's Diagnoser (MediaPipe alignment +
            ensemble), the distances the Diagnose page shows; photos with no face found are not
            counted and their number is in the provenance. ``"crop"``: the committed crops.
        subset: only these image ids (and the description for the provenance), e.g.
            :func:`photo_subset`; ``None``: every held-out and unaffected image.
    """
    held, un_mask = held_out_ids(data, directory)
    if subset is not None:
        chosen = np.isin(data.image_ids, list(subset[0]))
        held, un_mask = held & chosen, un_mask & chosen
    held_out, unaffected = data.select(held), data.select(un_mask)
    n_un_subjects = len(set(unaffected.subject_ids))
    base = (
        f"gmx.demo {__version__}: held-out = frequent test split + rare split-0 test images "
        f"({len(held_out)} images); unaffected = synthetic unaffected cohort {UNAFFECTED} "
        f"({len(unaffected)} images of {n_un_subjects} people); data {directory}"
    )
    if subset is not None:
        base += f"; {subset[1]}"
    if source == "crop":
        return calibrate_held_out(
            gallery,
            ensemble.embed(held_out.images),
            list(held_out.labels),
            subjects=list(held_out.subject_ids),
            unaffected=nearest_syndrome_distances(ensemble.embed(unaffected.images), gallery),
            provenance=f"{base}; {CROP_PATH_PROVENANCE}",
        )
    from gmx.align import FaceAligner
    from gmx.synth.examples import DEFAULT_CACHE, iter_held_out_photos

    ids = [str(i) for i in held_out.image_ids] + [str(i) for i in unaffected.image_ids]
    photos = iter_held_out_photos(directory, ids, seed=seed, cache=cache or DEFAULT_CACHE)
    with Diagnoser(ensemble, gallery, FaceAligner(max_faces=MAX_FACES)) as diagnoser:
        q = photo_path_embeddings(diagnoser, photos, gallery.n_variants, gallery.embedding_dim)
    row = {iid: k for k, iid in enumerate(q.image_ids)}
    held_rows = [row[str(i)] for i in held_out.image_ids if str(i) in row]
    un_rows = [row[str(i)] for i in unaffected.image_ids if str(i) in row]
    held_kept = [k for k, i in enumerate(held_out.image_ids) if str(i) in row]
    n_fail_held = len(held_out) - len(held_rows)
    n_fail_un = len(unaffected) - len(un_rows)
    if q.no_face:
        log.warning("no face found in %d re-rendered photos: %s", len(q.no_face), q.no_face)
    return calibrate_held_out(
        gallery,
        q.embeddings[held_rows],
        [str(held_out.labels[k]) for k in held_kept],
        subjects=[str(held_out.subject_ids[k]) for k in held_kept],
        unaffected=nearest_syndrome_distances(q.embeddings[un_rows], gallery),
        provenance=f"{base}; {PHOTO_PATH_PROVENANCE}; no face found (not counted): "
        f"{n_fail_held} held-out and {n_fail_un} unaffected photos",
    )


def calibrate_demo_gallery(
    directory: Path,
    model_path: Path,
    *,
    report: Path | None = None,
    crop_report: Path | None = None,
    full: bool = False,
    seed: int = 0,
    cache: Path | None = None,
) -> Calibration:
    """Compute :func:`calibrate_demo` (photo path) for the saved demo gallery and store it in the file.

    Args:
        directory: the demo folder (``models/demo``).
        model_path: the demo model (the gallery's fingerprint is checked).
        report: also write :func:`~gmx.gallery.calibration_summary` as JSON here.
        crop_report: also write, for comparison, the crop path's summaries (same run, same model
            and gallery) on the same images and on every held-out image, as JSON here.
        full: render every held-out and unaffected photo instead of :func:`photo_subset`.
        seed: the demo build's seed (rendering) and the subset's.
        cache: the synth source bank's folder (default :data:`gmx.synth.examples.DEFAULT_CACHE`).
    """
    data = load_demo_data(directory)
    ensemble = Ensemble([load_model(model_path, device="cpu")], flip=True, grey=True)
    gallery_path = directory / "gallery.sqlite"
    gallery = load_gallery(gallery_path, expected_fingerprint=ensemble.fingerprint)
    subset = None if full else photo_subset(data, directory, seed=seed)
    calibration = calibrate_demo(
        data, ensemble, gallery, directory, subset=subset, seed=seed, cache=cache
    )
    save_gallery(replace(gallery, calibration=calibration), gallery_path)
    if report is not None:
        write_calibration_report(calibration, report)
    if crop_report is not None:
        same = calibrate_demo(data, ensemble, gallery, directory, source="crop", subset=subset)
        every = calibrate_demo(data, ensemble, gallery, directory, source="crop")
        summaries = {
            "crop_path_same_images": calibration_summary(same).to_dict(),
            "crop_path_all_images": calibration_summary(every).to_dict(),
        }
        atomic_write_text(crop_report, json.dumps(_rounded(summaries), indent=1) + "\n")
    return calibration


def write_calibration_report(calibration: Calibration, path: Path) -> None:
    """:func:`~gmx.gallery.calibration_summary` as indented JSON (numbers rounded to 4 places)."""
    summary = calibration_summary(calibration).to_dict()
    atomic_write_text(path, json.dumps(_rounded(summary), indent=1) + "\n")


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _say_epoch(cfg: TrainConfig, say: Callable[[str], None]) -> Callable[[EpochLog], None]:
    def report(e: EpochLog) -> None:
        say(
            f"epoch {e.epoch:3d}/{cfg.epochs}: loss {e.loss:.3f} train acc "
            f"{e.train_accuracy:.3f} val acc {e.val_accuracy:.3f} ({e.seconds:.1f} s)"
        )

    return report


def build_demo_gallery_and_metrics(
    directory: Path,
    model_path: Path,
    *,
    say: Callable[[str], None] = log.info,
    training: dict[str, object] | None = None,
) -> DemoBuild:
    """Embed the gallery with the demo model (CPU), save it, evaluate, write ``metrics.json``."""
    directory = Path(directory)
    data = load_demo_data(directory)
    loaded = load_model(model_path, device="cpu")
    ensemble = Ensemble([loaded], flip=True, grey=True)
    say("Embedding the gallery")
    gallery = build_demo_gallery(data, ensemble, directory)
    say("Calibrating on the held-out splits and the unaffected cohort")
    gallery = replace(
        gallery,
        calibration=calibrate_demo(
            data, ensemble, gallery, directory, subset=photo_subset(data, directory)
        ),
    )
    gallery_path = directory / "gallery.sqlite"
    save_gallery(gallery, gallery_path)  # the photos' WebP bytes, verbatim
    say("Evaluating on the test splits")
    metrics: dict[str, object] = {
        "gmx": __version__,
        "model": model_path.name,
        "model_fingerprint": ensemble.fingerprint,
        "evaluation": evaluate_demo(data, ensemble, gallery, directory),
    }
    if training is None:  # re-embedding only: keep the record of how this model was trained
        training = _previous_training(directory / "metrics.json", ensemble.fingerprint)
    if training is not None:
        metrics["training"] = training
    atomic_write_text(directory / "metrics.json", json.dumps(metrics, indent=1))
    record_evaluation_in_card(model_path, metrics["evaluation"])
    return DemoBuild(model_path, gallery_path, metrics)


def _previous_training(path: Path, fingerprint: str) -> dict[str, object] | None:
    """The ``training`` record of an existing ``metrics.json`` of the same model, if any."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("model_fingerprint") != fingerprint:
        return None
    training = old.get("training")
    return training if isinstance(training, dict) else None


def record_evaluation_in_card(model_path: Path, evaluation: object) -> None:
    """Add the measured ranking accuracy to the model card's notes (weights untouched)."""
    from gmx.encode import card_path_for

    card_file = card_path_for(model_path)
    card = json.loads(card_file.read_text(encoding="utf-8"))
    notes = json.loads(card.get("notes") or "{}")
    notes["ranking_evaluation"] = evaluation
    notes["ranking_protocol"] = (
        "GestaltMatcher-Arc ranking (mean cosine distance over 4 TTA variants, nearest gallery "
        "image per syndrome); gallery = frequent train+val + rare split-0 gallery; macro = mean "
        "over syndromes of per-syndrome top-k accuracy"
    )
    card["notes"] = json.dumps(notes)
    atomic_write_text(card_file, json.dumps(card, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    """``python -m gmx.demo {train,gallery,build}``."""
    parser = argparse.ArgumentParser(prog="python -m gmx.demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "train": "train the demo model only",
        "gallery": "embed the gallery with the existing model and evaluate",
        "build": "train, then embed the gallery and evaluate",
        "calibrate": "store the gallery's calibration (held-out splits + unaffected cohort)",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--data", type=Path, default=Path("models/demo"))
        p.add_argument(
            "--model", type=Path, default=None, help="model path (default DATA/gmx-demo-iresnet.pt)"
        )
        if name == "calibrate":
            p.add_argument("--report", type=Path, default=None, help="write the figures as JSON")
            p.add_argument(
                "--crop-report",
                type=Path,
                default=None,
                help="also write the crop path's figures (comparison, same run) as JSON",
            )
            p.add_argument(
                "--full",
                action="store_true",
                help="render every held-out photo (17-22 min on a loaded 2-core CPU), not the subset",
            )
            p.add_argument("--seed", type=int, default=0, help="the demo build's seed")
        if name not in ("gallery", "calibrate"):
            p.add_argument("--seed", type=int, default=0)
            p.add_argument(
                "--epochs",
                type=int,
                help=f"default {TrainConfig.epochs} ({SHUFFLED_EPOCHS} with --shuffle-labels)",
            )
            p.add_argument("--layers", type=int, nargs=4, default=TrainConfig.layers)
            p.add_argument("--widths", type=int, nargs=4, default=TrainConfig.widths)
            p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
            p.add_argument("--threads", type=int, default=TrainConfig.threads)
        if name == "train":
            p.add_argument(
                "--shuffle-labels",
                type=int,
                metavar="SEED",
                help="permute the training labels with SEED (the data-randomisation control, "
                f"saved as DATA/{SHUFFLED_MODEL_NAME}.pt unless --model is given)",
            )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    shuffle = getattr(args, "shuffle_labels", None)
    default_name = MODEL_NAME if shuffle is None else SHUFFLED_MODEL_NAME
    model_path = args.model or args.data / f"{default_name}.pt"
    training = None
    if args.command in ("train", "build"):
        cfg = TrainConfig(
            seed=args.seed,
            epochs=args.epochs or (TrainConfig.epochs if shuffle is None else SHUFFLED_EPOCHS),
            layers=tuple(args.layers),
            widths=tuple(args.widths),
            threads=args.threads,
        )
        data = load_demo_data(args.data)
        log.info("Training %s on %s", default_name, args.device)
        _, training = train_demo_model(
            data, cfg, model_path, progress=_say_epoch(cfg, log.info), device=args.device,
            shuffle_labels=shuffle,
        )  # fmt: skip
        log.info(
            "classifier macro top-k on the test split: %s", training["classifier_macro_topk_test"]
        )
    if args.command == "calibrate":
        cal = calibrate_demo_gallery(
            args.data,
            model_path,
            report=args.report,
            crop_report=args.crop_report,
            full=args.full,
            seed=args.seed,
        )
        log.info(
            "calibration: %d held-out images counted, %d skipped, %s unaffected, AUROC %s",
            cal.n_images,
            cal.n_skipped_images,
            cal.n_unaffected,
            cal.auroc(),
        )
        return 0
    if args.command in ("gallery", "build"):
        result = build_demo_gallery_and_metrics(args.data, model_path, training=training)
        log.info("evaluation: %s", json.dumps(result.metrics["evaluation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
