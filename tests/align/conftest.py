"""Fixtures of the alignment tests: a real face (scikit-image's astronaut, public domain) and
shared MediaPipe aligners (models load once per session)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from skimage import data

from gmx.align import FaceAligner


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """``(512, 512, 3)`` uint8 RGB photo with one frontal face, read-only."""
    img = np.ascontiguousarray(data.astronaut())
    img.setflags(write=False)
    return img


@pytest.fixture(scope="session")
def aligner() -> Iterator[FaceAligner]:
    """Default aligner (``max_faces=1``, fast path)."""
    with FaceAligner() as al:
        yield al


@pytest.fixture(scope="session")
def group_aligner() -> Iterator[FaceAligner]:
    """Aligner that searches every pyramid level (group photos)."""
    with FaceAligner(max_faces=20) as al:
        yield al
