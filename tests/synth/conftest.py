"""Fixtures for gmx.synth: a tiny source bank made from scikit-image's astronaut (a real face).

Six "sources" are the astronaut photo under different small similarity jitters and colour gains;
their landmarks come from one real MediaPipe fit carried through the jitter, so building the bank
needs a single alignment call.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from gmx.align import FaceAligner
from gmx.synth.generate import Renderer
from gmx.synth.sources import SourceBank, SourceFace, apply_affine, bank_from_faces


@pytest.fixture(scope="session")
def aligner():
    with FaceAligner() as fa:
        yield fa


@pytest.fixture(scope="session")
def astronaut_landmarks(aligner) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.ascontiguousarray(data.astronaut())
    res = aligner.align(rgb)
    assert res.faces, "the astronaut must be found"
    return rgb, np.asarray(res.faces[0].landmarks_image, np.float64)


@pytest.fixture(scope="session")
def tiny_bank(astronaut_landmarks) -> SourceBank:
    rgb, pts = astronaut_landmarks
    rng = np.random.default_rng(123)
    faces = []
    h, w = rgb.shape[:2]
    for k in range(7):
        centre = pts.mean(0)
        m = cv2.getRotationMatrix2D(
            (float(centre[0]), float(centre[1])),
            float(rng.uniform(-6, 6)),
            float(rng.uniform(0.9, 1.1)),
        )
        m[:, 2] += rng.uniform(-8, 8, 2)
        img = cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img * np.exp(rng.normal(0, 0.1, 3)), 0, 255).astype(np.uint8)
        q = apply_affine(m, pts)
        # Small per-source shape differences (as between real people).
        q = q + rng.normal(0, 0.6, q.shape)
        faces.append((img, q, SourceFace(k, "test:astronaut", f"variant-{k}", 0, 40.0)))
    return bank_from_faces(faces)


@pytest.fixture(scope="session")
def renderer(tiny_bank) -> Renderer:
    return Renderer.from_bank(tiny_bank)
