"""The Explain page on the tiny fixture configuration (AppTest, headless)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from gmx.panel import maps_npz
from ui import state

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "2_Explain.py")
SLOW = state.KEEP_PREFIX + "explain.slow"


@pytest.fixture()
def explain_page(tiny_setup, monkeypatch) -> AppTest:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    return at


def test_without_photo_points_to_diagnose(tiny_setup, monkeypatch):
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("Diagnose" in i.value for i in at.info)


def test_grid_of_syndromes_by_methods(explain_page):
    at = explain_page.run()
    assert not at.exception, [e.value for e in at.exception]
    # 3 syndromes x 7 fast thesis methods as square images (plus faces and colour bars), and the
    # large view with its raw panel
    images = [i for el in at.image for i in el.proto.imgs]
    assert len(images) >= 3 * 7 + 3
    assert len(at.get("plotly_chart")) == 2
    assert any("Large view" in s.value for s in at.subheader)


def test_slow_methods_and_other_targets(explain_page):
    at = explain_page
    at.session_state[SLOW] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.sidebar.radio[0].set_value("contrast").run()
    assert not at.exception, [e.value for e in at.exception]
    at.sidebar.radio[0].set_value("logit").run()
    assert not at.exception, [e.value for e in at.exception]


def test_maps_npz_roundtrip(tiny_setup):
    from gmx.encode import load_model
    from gmx.explain import explain_targets
    from gmx.gallery import load_gallery, rank
    from gmx.panel import similarity_rows

    model = load_model(tiny_setup.model_path, device="cpu")
    gallery = load_gallery(tiny_setup.gallery_path)
    face = gallery.photos[0]
    query = np.asarray(gallery.embeddings[0])
    rows = similarity_rows(rank(query, gallery), gallery, gallery.variants[:1], 2)
    grid = explain_targets(
        [model.model],
        face,
        [r.target for r in rows],
        gallery.variants[:1],
        methods=["saliency", "gradcam"],
    )
    blob = maps_npz(rows, grid, provenance={"test": True})
    with np.load(io.BytesIO(blob)) as z:
        assert z["r0_gradcam_raw"].shape == (7, 7)
        np.testing.assert_array_equal(z["r1_saliency_values"], grid[1]["saliency"].values)
        assert "syndrome" in str(z["index"])


def test_similarity_rows_carry_the_syndromes_images_for_reranking(tiny_setup):
    import torch

    from gmx.gallery import load_gallery, rank
    from gmx.panel import similarity_rows

    gallery = load_gallery(tiny_setup.gallery_path)
    query = np.asarray(gallery.embeddings[0])
    ranking = rank(query, gallery)
    rows = similarity_rows(ranking, gallery, gallery.variants, 3)
    for row in rows:
        own = [im.syndrome_id == row.match.syndrome_id for im in gallery.images]
        syn = row.target.syndrome_embeddings
        assert syn.shape == (sum(own), len(gallery.variants), query.shape[1])
        # At the query itself the re-ranked score is the ranking's score, 1 - distance.
        e = [torch.tensor(query[v : v + 1]) for v in range(len(gallery.variants))]
        score = float(row.target.ranking_score(e)[0])
        assert score == pytest.approx(1 - row.match.distance, abs=1e-5)


def test_reranked_occlusion_toggle(explain_page):
    at = explain_page
    at.session_state[SLOW] = True
    at.run()
    toggle = next(t for t in at.sidebar.toggle if "re-rank" in t.label)
    toggle.set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
