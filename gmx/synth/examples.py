"""Full example photos of synthetic *test* patients, for the app's "Demo faces" picker.

The committed demo data holds only aligned 112x112 crops. For a realistic demo the app needs whole
photos that go through detection and alignment like an upload, so this module re-renders the first
photo of chosen test-split patients exactly as ``python -m gmx.synth build`` made it (same seed, same
patient generator), checks that the committed alignment transform (the one of the patient's reference
photo, see :func:`gmx.synth.generate.photograph`) crops it to the committed image, and writes JPEGs::

    python -m gmx.synth.examples --data models/demo --out models/demo/examples

Only test-split patients (frequent test, rare test, unaffected) are used: none of them is in the
demo gallery or was trained on.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from gmx.align.geometry import warp_to_template
from gmx.synth.build import default_aligner, get_bank, patient_rng, plan_cohort
from gmx.synth.generate import Renderer, sample_face
from gmx.synth.render import render_photo, sample_photo_params

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache/synth")
#: Mean absolute difference (grey levels) allowed between the re-rendered crop and the committed crop
#: (the committed crops are WebP-compressed, so they are not bit-identical; measured 1.4-1.9).
MAX_CROP_DIFFERENCE = 3.0


def _test_subjects(data_dir: Path) -> dict[str, str]:
    """One test subject per class: syndrome id -> subject id (first in file order)."""
    from gmx.demo import rare_split_ids

    rare_test = rare_split_ids(data_dir, "test")
    chosen: dict[str, str] = {}
    with (data_dir / "synth_metadata.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            ok = r["split"] in ("test", "unaffected") or r["image_id"] in rare_test
            if ok and r["label"] not in chosen:
                chosen[r["label"]] = r["subject"]
    return chosen


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
            rng = patient_rng(seed, plan.index)
            face = sample_face(renderer, plan.syndrome, rng)
            photo, _ = render_photo(face.canvas, sample_photo_params(rng))
            row = np.flatnonzero(data.subject_ids == subject)[0]
            crop = warp_to_template(photo, data.transforms[row].astype(np.float64))
            committed = data.images[row]
            diff = float(np.abs(crop.astype(int) - committed.astype(int)).mean())
            # The app aligns the whole photo itself (on the patient's own landmarks).
            if not aligner.align(photo).faces:
                raise RuntimeError(f"subject {subject}: no face found in the example photo")
            if diff > MAX_CROP_DIFFERENCE:
                raise RuntimeError(
                    f"subject {subject}: re-rendered photo differs from the committed crop "
                    f"(mean |diff| {diff:.1f}); rebuild the demo data"
                )
            letter = plan.syndrome.name.split("(")[0].strip().split()[-1]
            label = "unaffected" if syndrome_id == "SYN:0000" else f"syndrome_{letter}"
            path = out / f"{label}_{subject}.jpg"
            buf = io.BytesIO()
            Image.fromarray(photo).save(buf, format="JPEG", quality=90)
            path.write_bytes(buf.getvalue())
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
