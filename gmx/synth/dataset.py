"""Load the committed synthetic demo data (``models/demo``) as arrays."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gmx.constants import TEMPLATE_SIZE
from gmx.errors import GmxError
from gmx.synth.build import FACES_FILE, METADATA_FILE, gmdb_file
from gmx.synth.syndromes import SyntheticSyndrome, all_classes


class DemoDataError(GmxError):
    """The demo data folder is missing files or its files disagree with each other."""


@dataclass(frozen=True, eq=False)
class DemoData:
    """The synthetic demo data set.

    Attributes:
        images: ``(N, 112, 112, 3)`` uint8 RGB, ArcFace-aligned by gmx.align.
        masks: ``(N, 112, 112)`` bool ground-truth regions of the syndrome features, template
            coordinates (all False for the unaffected cohort).
        transforms: ``(N, 2, 3)`` float32 photo -> template affines of the alignment.
        image_ids: ``(N,)`` str.
        subject_ids: ``(N,)`` str; several images can share a subject.
        labels: ``(N,)`` str syndrome ids (``SYN:0001`` ...; ``SYN:0000`` = unaffected).
        splits: ``(N,)`` str: ``train``, ``val``, ``test`` (frequent syndromes), ``rare`` or
            ``unaffected``.
        syndromes: the syndrome table (and the unaffected cohort last).
    """

    images: np.ndarray
    masks: np.ndarray
    transforms: np.ndarray
    image_ids: np.ndarray
    subject_ids: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    syndromes: tuple[SyntheticSyndrome, ...]

    def __len__(self) -> int:
        return len(self.image_ids)

    def select(self, mask: np.ndarray) -> DemoData:
        """The rows where ``mask`` (``(N,)`` bool) is True, as a new :class:`DemoData`."""
        m = np.asarray(mask, bool)
        if m.shape != (len(self),):
            raise ValueError(f"mask must have shape ({len(self)},), got {m.shape}")
        return DemoData(
            self.images[m], self.masks[m], self.transforms[m], self.image_ids[m],
            self.subject_ids[m], self.labels[m], self.splits[m], self.syndromes,
        )  # fmt: skip


def _decode_webp(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = np.empty((len(offsets) - 1, TEMPLATE_SIZE, TEMPLATE_SIZE, 3), np.uint8)
    raw = blob.tobytes()
    for i in range(len(out)):
        with Image.open(io.BytesIO(raw[offsets[i] : offsets[i + 1]])) as im:
            out[i] = np.asarray(im.convert("RGB"))
    return out


def load_demo_data(directory: str | Path) -> DemoData:
    """Read the demo data written by ``python -m gmx.synth build``.

    Args:
        directory: the folder (``models/demo``).

    Raises:
        DemoDataError: a file is missing or the files disagree (ids, counts, labels).
    """
    d = Path(directory)
    faces, meta = d / FACES_FILE, d / METADATA_FILE
    for p in (faces, meta):
        if not p.is_file():
            raise DemoDataError(
                f"{p} is missing; rebuild with `python -m gmx.synth build --out {d}`"
            )
    with np.load(faces, allow_pickle=False) as z:
        images = _decode_webp(z["webp"], z["offsets"])
        n = len(images)
        masks = np.unpackbits(z["masks"], axis=1, count=TEMPLATE_SIZE * TEMPLATE_SIZE)
        masks = masks.reshape(n, TEMPLATE_SIZE, TEMPLATE_SIZE).astype(bool)
        transforms = z["transforms"].astype(np.float32)
        image_ids = z["image_ids"].astype(str)
    with meta.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if [r["image_id"] for r in rows] != list(image_ids):
        raise DemoDataError(
            f"{meta.name} and {faces.name} list different images; rebuild the demo data"
        )
    known = {s.syndrome_id for s in all_classes()}
    labels = np.array([r["label"] for r in rows], dtype=str)
    unknown = set(labels) - known
    if unknown:
        raise DemoDataError(
            f"{meta.name} uses syndrome ids {sorted(unknown)} not in the syndrome table"
        )
    return DemoData(
        images=images,
        masks=masks,
        transforms=transforms,
        image_ids=image_ids,
        subject_ids=np.array([r["subject"] for r in rows], dtype=str),
        labels=labels,
        splits=np.array([r["split"] for r in rows], dtype=str),
        syndromes=all_classes(),
    )


def read_photo_params(directory: str | Path) -> list[dict[str, object]]:
    """The photo conditions of every image (same order as :func:`load_demo_data`)."""
    with (Path(directory) / METADATA_FILE).open(newline="", encoding="utf-8") as fh:
        return [json.loads(r["photo"]) for r in csv.DictReader(fh)]


#: The GMDB-layout files split the rare syndromes 10 ways (GestaltMatcher-Arc's rare protocol);
#: the demo gallery uses rare split 0.
RARE_GALLERY_SPLIT = "0"


def rare_split_ids(directory: Path, which: str, split: str = RARE_GALLERY_SPLIT) -> set[str]:
    """Image ids of one split of the rare syndromes' ``gallery`` or ``test`` file (GMDB layout)."""
    files = sorted(directory.glob(f"gmdb_rare_{which}_images_*.csv"))
    if not files:
        raise FileNotFoundError(f"no gmdb_rare_{which}_images_*.csv in {directory}")
    with files[0].open(newline="", encoding="utf-8") as fh:
        return {r["image_id"] for r in csv.DictReader(fh) if r["split"] == split}


__all__ = [
    "RARE_GALLERY_SPLIT",
    "DemoData",
    "DemoDataError",
    "gmdb_file",
    "load_demo_data",
    "rare_split_ids",
    "read_photo_params",
]
