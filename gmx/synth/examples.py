"""Full example photos of synthetic *test* patients, for the app's "Demo faces" picker and the demo's
calibration on the user's path.

The committed demo data holds only aligned 112x112 crops. For a realistic demo the app needs whole
photos that go through detection and alignment like an upload, so this module re-renders the first
photo of chosen test-split patients exactly as ``python -m gmx.synth build`` made it (same seed, same
patient generator), checks that the committed alignment transform (the one of the patient's reference
photo, see :func:`gmx.synth.generate.photograph`) crops it to the committed image, and writes JPEGs::

    python -m gmx.synth.examples --data models/demo --out models/demo/examples

Only test-split patients (frequent test, rare test, unaffected) are used: none of them is in the
demo gallery or was trained on.

:func:`iter_held_out_photos` re-renders *any* committed image's photo the same way (every photo of a
patient, in build order) and yields it as the JPEG bytes an example file holds: the demo's
calibration ranks these through the app's :class:`~gmx.pipeline.Diagnoser` (see
:func:`gmx.demo.calibrate_demo`). Measured cost on the 2-core loaded CPU box: see docs/gallery.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from gmx._typing import ImageU8
from gmx.align.geometry import warp_to_template
from gmx.synth.build import PatientPlan, default_aligner, get_bank, patient_rng, plan_cohort
from gmx.synth.generate import Renderer, sample_face
from gmx.synth.render import render_photo, sample_photo_params

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache/synth")
#: Mean absolute difference (grey levels) allowed between the re-rendered crop and the committed crop
#: (the committed crops are WebP-compressed, so they are not bit-identical; measured 1.4-1.9).
MAX_CROP_DIFFERENCE = 3.0
#: JPEG quality of the example photos (what a user would upload; the calibration uses the same bytes).
EXAMPLE_JPEG_QUALITY = 90


def example_jpeg(photo: ImageU8) -> bytes:
    """A rendered photo as the JPEG bytes of an example file (quality :data:`EXAMPLE_JPEG_QUALITY`)."""
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=EXAMPLE_JPEG_QUALITY)
    return buf.getvalue()


def render_patient_photos(
    renderer: Renderer, plan: PatientPlan, seed: int, photo_indices: Iterable[int]
) -> dict[int, ImageU8]:
    """Photos ``photo_indices`` of one planned patient, exactly as ``python -m gmx.synth build``
    rendered them (same generator draws in the same order; the build's ``photograph``)."""
    wanted = set(photo_indices)
    if not wanted:
        return {}
    rng = patient_rng(seed, plan.index)
    face = sample_face(renderer, plan.syndrome, rng)
    out: dict[int, ImageU8] = {}
    for j in range(max(wanted) + 1):
        params = sample_photo_params(rng)  # drawn for every photo, kept or not, as the build does
        if j in wanted:
            out[j] = render_photo(face.canvas, params)[0]
    return out


def _check_crop(photo: ImageU8, transform: np.ndarray, committed: ImageU8, what: str) -> float:
    crop = warp_to_template(photo, transform.astype(np.float64))
    diff = float(np.abs(crop.astype(int) - committed.astype(int)).mean())
    if diff > MAX_CROP_DIFFERENCE:
        raise RuntimeError(
            f"{what}: re-rendered photo differs from the committed crop (mean |diff| {diff:.1f}); "
            "rebuild the demo data"
        )
    return diff


def iter_held_out_photos(
    data_dir: Path, image_ids: Iterable[str], *, seed: int = 0, cache: Path = DEFAULT_CACHE
) -> Iterator[tuple[str, bytes]]:
    """``(image_id, JPEG bytes)`` of committed demo images' full photos, re-rendered.

    Each photo is checked against its committed crop (the build's alignment transform); patients
    are rendered once for all their wanted photos. Yields in ``image_ids``' patient order.

    Raises:
        RuntimeError: a re-rendered photo does not crop to its committed image.
        KeyError: an unknown image id.
    """
    from gmx.synth.dataset import load_demo_data

    data = load_demo_data(data_dir)
    row_of = {str(i): k for k, i in enumerate(data.image_ids)}
    with (data_dir / "synth_metadata.csv").open(newline="", encoding="utf-8") as fh:
        photo_index = {r["image_id"]: int(r["photo_index"]) for r in csv.DictReader(fh)}
    by_subject: dict[str, list[str]] = {}
    for iid in image_ids:
        by_subject.setdefault(str(data.subject_ids[row_of[str(iid)]]), []).append(str(iid))
    plans = {p.subject_id: p for p in plan_cohort(seed)}
    renderer = Renderer.from_bank(get_bank(cache))
    for subject, ids in by_subject.items():
        photos = render_patient_photos(
            renderer, plans[subject], seed, (photo_index[i] for i in ids)
        )
        for iid in ids:
            photo = photos[photo_index[iid]]
            row = row_of[iid]
            _check_crop(photo, data.transforms[row], data.images[row], f"image {iid}")
            yield iid, example_jpeg(photo)


def _test_subjects(data_dir: Path) -> dict[str, str]:
    """One test subject per class: syndrome id -> subject id (first in file order)."""
    from gmx.synth.dataset import rare_split_ids

    rare_test = rare_split_ids(data_dir, "test")
    chosen: dict[str, str] = {}
    with (data_dir / "synth_metadata.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            ok = r["split"] in ("test", "unaffected") or r["image_id"] in rare_test
            if ok and r["label"] not in chosen:
                chosen[r["label"]] = r["subject"]
    return chosen


def example_image_ids(data_dir: Path) -> dict[str, str]:
    """Image id of each demo example photo: syndrome id -> the committed image it re-renders."""
    from gmx.synth.dataset import load_demo_data

    data = load_demo_data(data_dir)
    return {
        syn: str(data.image_ids[np.flatnonzero(data.subject_ids == subject)[0]])
        for syn, subject in _test_subjects(data_dir).items()
    }


def write_examples(
    data_dir: Path, out: Path, *, seed: int = 0, cache: Path = DEFAULT_CACHE
) -> list[Path]:
    """Render one photo per class of a test patient into ``out``; returns the written files.

    Raises:
        RuntimeError: if a re-rendered photo does not align to its committed crop (the generator or
            the data changed: rebuild the demo data first).
    """
    from gmx.synth.dataset import load_demo_data

    data = load_demo_data(data_dir)
    plans = {p.subject_id: p for p in plan_cohort(seed)}
    renderer = Renderer.from_bank(get_bank(cache))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with default_aligner(1) as aligner:
        for syndrome_id, subject in sorted(_test_subjects(data_dir).items()):
            plan = plans[subject]
            photo = render_patient_photos(renderer, plan, seed, (0,))[0]
            row = np.flatnonzero(data.subject_ids == subject)[0]
            # The app aligns the whole photo itself (on the patient's own landmarks).
            if not aligner.align(photo).faces:
                raise RuntimeError(f"subject {subject}: no face found in the example photo")
            diff = _check_crop(photo, data.transforms[row], data.images[row], f"subject {subject}")
            letter = plan.syndrome.name.split("(")[0].strip().split()[-1]
            label = "unaffected" if syndrome_id == "SYN:0000" else f"syndrome_{letter}"
            path = out / f"{label}_{subject}.jpg"
            path.write_bytes(example_jpeg(photo))
            written.append(path)
            log.info(
                "%s: subject %s (%s), crop difference %.2f", path.name, subject, syndrome_id, diff
            )
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line of :func:`write_examples`."""
    p = argparse.ArgumentParser(
        prog="python -m gmx.synth.examples", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", type=Path, default=Path("models/demo"))
    p.add_argument("--out", type=Path, default=Path("models/demo/examples"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_examples(args.data, args.out, seed=args.seed, cache=args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
