"""A real small gallery for gallery-case studies: demo photos embedded with the demo model by the
library (:func:`gmx.gallery.build_gallery`), saved and read back as a file (no fixture object
bypasses :func:`gmx.gallery.load_gallery`).

Three frequent demo syndromes, three patients each, up to two photos per patient, from the demo's
train/val splits (what the demo gallery holds). No ``gt_mask`` extra: like a real gallery, it has
no true causal regions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gmx.config import DEMO_DIR, DEMO_MODEL

#: Syndromes, patients per syndrome and photos per patient of the small gallery.
SYNDROMES = ("SYN:0001", "SYN:0002", "SYN:0003")
PATIENTS = 3
PHOTOS = 2
GALLERY_NAME = "study test gallery"


def build_study_gallery(folder: Path, *, photos: bool = True, visible: bool = True) -> Path:
    """Build and save the small gallery in ``folder``; returns the file.

    Args:
        folder: where ``study_gallery.sqlite`` is written.
        photos: keep the photos (``False``: a gallery a study cannot use).
        visible: ``photos_visible`` of the gallery.
    """
    from gmx.demo import _syndrome_table
    from gmx.encode import Ensemble, load_model
    from gmx.gallery import GalleryImage, build_gallery, save_gallery
    from gmx.synth import load_demo_data

    data = load_demo_data(DEMO_DIR)
    pick = np.zeros(len(data), bool)
    for syndrome in SYNDROMES:
        rows = np.flatnonzero((data.labels == syndrome) & np.isin(data.splits, ("train", "val")))
        for subject in list(dict.fromkeys(data.subject_ids[rows]))[:PATIENTS]:
            pick[rows[data.subject_ids[rows] == subject][:PHOTOS]] = True
    sel = data.select(pick)
    ensemble = Ensemble([load_model(DEMO_MODEL, device="cpu")], flip=True, grey=True)
    images = [GalleryImage(str(i), str(s), str(lab), None)
              for i, s, lab in zip(sel.image_ids, sel.subject_ids, sel.labels, strict=True)]  # fmt: skip
    gallery = build_gallery(
        GALLERY_NAME,
        "1",
        images,
        _syndrome_table(data),
        ensemble.embed,
        sel.images,
        ensemble.variants,
        ensemble.fingerprint,
        keep_photos=photos,
        photos_visible=visible and photos,
        photo_codec="png",
    )
    name = "study_gallery.sqlite" if photos else "study_gallery_no_photos.sqlite"
    return save_gallery(gallery, folder / name)
