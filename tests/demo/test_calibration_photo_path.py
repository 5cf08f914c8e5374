"""The demo's stored calibration is measured on the user's path (issue 12): re-rendered held-out
photos -> MediaPipe alignment -> the app's Diagnoser, not the committed 112x112 crops."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.config import DEMO_DIR, DEMO_GALLERY, load_config
from gmx.demo import PHOTO_PATH_PROVENANCE, photo_path_embeddings
from gmx.gallery import load_gallery, nearest_syndrome_distances
from gmx.pipeline import Diagnoser
from gmx.synth.build import bank_key
from gmx.synth.examples import DEFAULT_CACHE, iter_held_out_photos

EXAMPLES = DEMO_DIR / "examples"
#: Held-out demo examples (frequent test split, unaffected cohort) and their image ids.
AFFECTED_EXAMPLE, UNAFFECTED_EXAMPLE = "syndrome_C_1209.jpg", "unaffected_1582.jpg"


@pytest.fixture(scope="module")
def diagnoser():
    with Diagnoser.from_config(load_config({})) as d:
        yield d


def _first_image_id(subject: str) -> str:
    from gmx.synth import load_demo_data

    data = load_demo_data(DEMO_DIR)
    return str(data.image_ids[np.flatnonzero(data.subject_ids == subject)[0]])


def test_stored_demo_calibration_says_photo_path():
    c = load_gallery(DEMO_GALLERY).calibration
    assert c is not None and c.method == "held-out"
    assert PHOTO_PATH_PROVENANCE in c.provenance
    assert "no face found (not counted)" in c.provenance


@pytest.mark.parametrize("name", [AFFECTED_EXAMPLE, UNAFFECTED_EXAMPLE])
def test_photo_path_query_is_what_diagnose_ranks(diagnoser, name):
    photo = (EXAMPLES / name).read_bytes()
    q = photo_path_embeddings(
        diagnoser, [(name, photo)], diagnoser.gallery.n_variants, diagnoser.gallery.embedding_dim
    )
    assert q.image_ids == (name,) and q.no_face == ()
    shown = diagnoser.diagnose(photo)  # what the Diagnose page shows for this upload
    assert shown.embeddings is not None and shown.ranking is not None
    np.testing.assert_array_equal(q.embeddings[0], shown.embeddings)
    top1 = nearest_syndrome_distances(q.embeddings, diagnoser.gallery)[0]
    assert top1 == pytest.approx(shown.ranking.syndromes[0].distance, abs=1e-9)


def test_stored_calibration_counts_the_examples_diagnose_distances(diagnoser):
    """The example photos are held-out images: the top-1 distance the Diagnose page shows for them
    is one of the counted distances (the crop path's distances for them differ by ~0.1)."""
    c = diagnoser.gallery.calibration
    assert c is not None and c.nearest_distances is not None and c.unaffected_distances is not None
    for name, counted in (
        (AFFECTED_EXAMPLE, c.nearest_distances),
        (UNAFFECTED_EXAMPLE, c.unaffected_distances),
    ):
        shown = diagnoser.diagnose((EXAMPLES / name).read_bytes())
        assert shown.ranking is not None
        d = shown.ranking.syndromes[0].distance
        assert np.isclose(counted, d, rtol=0, atol=1e-6).any(), (name, d)


@pytest.mark.skipif(
    not (DEFAULT_CACHE / f"bank-{bank_key()}.npz").exists(),
    reason="the synth source bank is not cached (python -m gmx.synth build makes it)",
)
def test_re_rendered_held_out_photo_is_the_example_file():
    subject = AFFECTED_EXAMPLE.removesuffix(".jpg").rsplit("_", 1)[1]
    iid = _first_image_id(subject)
    [(got_id, jpeg)] = list(iter_held_out_photos(DEMO_DIR, [iid]))
    assert got_id == iid and jpeg == (EXAMPLES / AFFECTED_EXAMPLE).read_bytes()
