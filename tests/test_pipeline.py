from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gmx.config import load_config
from gmx.errors import GalleryError, ImageLoadError
from gmx.gallery import load_gallery, rank
from gmx.pipeline import Diagnoser, check_compatible


@pytest.fixture(scope="module")
def diagnoser(tiny_setup):
    cfg = load_config({"GMX_CONFIG": str(tiny_setup.config_path)})
    with Diagnoser.from_config(cfg) as d:
        yield d


def test_diagnose_real_photo_end_to_end(diagnoser, tiny_setup):
    d = diagnoser.diagnose(tiny_setup.photo_jpeg)
    assert d.ok and d.message is None
    assert d.embeddings.shape == (4, 32)
    assert len(d.image_sha256) == 64
    assert [m.rank for m in d.ranking.syndromes] == [1, 2, 3]
    # the ranking is exactly gmx.gallery.rank on the same embeddings
    again = rank(d.embeddings, diagnoser.gallery)
    assert [m.syndrome_id for m in again.syndromes] == [m.syndrome_id for m in d.ranking.syndromes]
    assert set(d.timings) >= {"decode", "align", "encode", "rank", "total"}


def test_no_face_is_a_value_not_an_exception(diagnoser):
    blank = np.full((200, 200, 3), 128, dtype=np.uint8)
    d = diagnoser.diagnose(blank)
    assert not d.ok and d.face is None and d.ranking is None
    assert "face" in d.message.lower()


def test_corrupt_bytes_raise_image_load_error(diagnoser):
    with pytest.raises(ImageLoadError):
        diagnoser.diagnose(b"definitely not an image")


def test_face_index_out_of_range_and_negative(diagnoser, tiny_setup):
    assert not diagnoser.diagnose(tiny_setup.photo_jpeg, face_index=3).ok
    with pytest.raises(ValueError, match="face_index"):
        diagnoser.diagnose(tiny_setup.photo_jpeg, face_index=-1)


def test_gallery_of_other_model_is_refused(diagnoser, tiny_setup):
    gallery = load_gallery(tiny_setup.gallery_path)
    other = dataclasses.replace(gallery, model_fingerprint="0" * 64)
    with pytest.raises(GalleryError, match="rebuild"):
        check_compatible(diagnoser.ensemble, other)
