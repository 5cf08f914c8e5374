"""The Explain page on the tiny fixture configuration (AppTest, headless)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from gmx.panel import maps_npz
from ui import explain_view, state

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


def _texts(at: AppTest) -> str:
    return " ".join(
        [i.value for i in at.info] + [m.value for m in at.markdown] + [c.value for c in at.caption]
    )


def test_slow_method_chosen_in_the_list_runs_and_its_cancel_button_goes_away(explain_page):
    """Occlusion picked in the Methods list (slow toggle off) is computed as a slow method, and the
    Cancel button is gone once the maps are there (it stayed on screen before)."""
    at = explain_page
    at.session_state[state.KEEP_PREFIX + "explain.methods"] = ["saliency", "occlusion"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if "Cancel" in b.label]
    assert "**Occlusion**" in [m.value for m in at.markdown]
    assert len([i for el in at.image for i in el.proto.imgs]) >= 3 * 2 + 3


def test_cancel_stops_slow_methods_cleanly_and_they_can_be_resumed(explain_page, monkeypatch):
    """The Cancel button's callback sets the stop flag; the engine stops at its next check, the
    page shows the other maps and says what was cancelled; "Compute them" computes the rest."""
    from ui import explain_view

    real = explain_view.explain_targets
    jobs: list[str] = []
    real_job_id = explain_view.job_id
    monkeypatch.setattr(explain_view, "job_id", lambda *a: jobs.append(real_job_id(*a)) or jobs[-1])

    def clicked_while_running(*args, should_stop=None, **kwargs):
        if should_stop is not None:
            explain_view.request_stop(jobs[-1])  # what the button's on_click does
        return real(*args, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(explain_view, "explain_targets", clicked_while_running)
    at = explain_page
    at.session_state[state.KEEP_PREFIX + "explain.methods"] = ["saliency", "occlusion"]
    at.session_state[state.KEEP_PREFIX + "explain.stride"] = 7  # maps no other test stored
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Cancelled: Occlusion" in _texts(at)
    assert "**Occlusion**" not in [m.value for m in at.markdown]  # no half-done column
    assert "**Saliency**" in [m.value for m in at.markdown]
    at.run()  # a rerun keeps the cancellation, and computes nothing
    assert "Cancelled: Occlusion" in _texts(at) and not at.exception
    monkeypatch.setattr(explain_view, "explain_targets", real)
    at.button(key=explain_view.RESUME_BUTTON).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Cancelled" not in _texts(at)
    assert "**Occlusion**" in [m.value for m in at.markdown]
    assert not [b for b in at.button if "Cancel" in b.label]


def test_explain_settings_and_colour_map_survive_a_change_of_page(tiny_setup, monkeypatch):
    """Target, sign, scale, methods and the one colour-map choice are kept settings: they survive
    another page, and the Syndromes and Similarity pages use the colour map chosen on Explain."""
    from gmx.viz import PALETTES

    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.switch_page("pages/2_Explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    blue_red = list(PALETTES)[1]
    k = state.KEEP_PREFIX
    at.radio(key=k + "explain.target").set_value("contrast")
    at.radio(key=k + "explain.sign").set_value("positive")
    at.radio(key=k + "explain.scale").set_value("per map")
    at.multiselect(key=k + "explain.methods").set_value(["saliency", "gradcam"])
    at.selectbox(key=k + "palette").set_value(blue_red).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("rather than" in m.value for m in at.markdown)  # contrast rows say with what
    at.switch_page("pages/4_Syndromes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key=k + "palette").value == blue_red
    at.switch_page("pages/3_Similarity.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key=k + "palette").value == blue_red
    at.switch_page("pages/2_Explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key=k + "explain.target").value == "contrast"
    assert at.radio(key=k + "explain.sign").value == "positive"
    assert at.radio(key=k + "explain.scale").value == "per map"
    assert at.multiselect(key=k + "explain.methods").value == ["saliency", "gradcam"]
    assert at.selectbox(key=k + "palette").value == blue_red
    assert not at.warning or all("Session State" not in w.value for w in at.warning)


def test_default_scale_is_shared_per_method_with_a_colour_bar_per_column(explain_page):
    at = explain_page.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.radio(key=state.KEEP_PREFIX + "explain.scale").value.startswith("shared per")
    legends = [c.value for c in at.caption if re.fullmatch(r"±\S+|\S+ to \S+", c.value)]
    assert len(legends) == 7  # one per method column, not one per map
    assert any(c.value.startswith(("pink", "purple")) for c in at.caption)  # the large view's


def test_downloads_are_built_on_click_not_on_every_run(
    explain_page, media_managers, monkeypatch, tiny_setup
):
    """The grid PNG and the maps .npz are deferred: a run (first view or rerun after a widget
    change) builds neither (it re-encoded both every time: ~0.5 s of a 0.8 s rerun on the demo),
    and a click gets the real files."""
    import gmx.panel

    built: list[str] = []
    real_png, real_npz = gmx.panel.grid_png, gmx.panel.maps_npz
    monkeypatch.setattr(
        gmx.panel, "grid_png", lambda *a, **k: built.append("png") or real_png(*a, **k)
    )
    monkeypatch.setattr(
        gmx.panel, "maps_npz", lambda *a, **k: built.append("npz") or real_npz(*a, **k)
    )
    at = explain_page.run()
    assert not at.exception, [e.value for e in at.exception]
    at.run()
    assert built == []
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    manager = media_managers[-1]

    def clicked(label: str) -> bytes:
        url = manager.execute_deferred(buttons[label].deferred_file_id)
        return manager._storage.get_file(url.rsplit("/", 1)[-1].split(".")[0]).content

    from PIL import Image

    assert Image.open(io.BytesIO(clicked("Download grid (PNG)"))).format == "PNG"
    with np.load(io.BytesIO(clicked("Download raw maps (.npz)"))) as z:
        assert "index" in z and "provenance" in z
        provenance = json.loads(str(z["provenance"]))
    assert sorted(built) == ["npz", "png"]
    # the page's provenance keys (gmx.panel.explanation_provenance without the service's extras)
    assert [k for k in provenance if k not in ("demo", "notice")] == [
        "photo_sha256", "models", "gallery", "face_index", "variants", "target",
    ]  # fmt: skip
    assert provenance["photo_sha256"] == hashlib.sha256(tiny_setup.photo_jpeg).hexdigest()


def test_region_bars_per_syndrome_row_and_feature_regions(explain_page):
    """Issue 11/12: each syndrome row gets region bars (share and density per facial region of the
    photo's mesh, from gmx.regions) and its HPO features' regions are ranked against the map."""
    from gmx.regions import REGION_LABELS, REGIONS

    at = explain_page.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Regions" for s in at.subheader)
    table = next(d.value for d in at.dataframe if "Region" in d.value.columns)
    assert list(table["Region"]) == [REGION_LABELS[r] for r in REGIONS]
    shares = [c for c in table.columns if c.endswith(": share")]
    assert len(shares) == 3  # one per syndrome row
    for c in shares:
        assert 0.0 < table[c].sum() <= 1.0 + 1e-9  # a share of the map's positive mass
        assert table[c.replace(": share", ": x size")].notna().all()
    text = " ".join(m.value for m in at.markdown)
    # the tiny gallery's syndrome one lists Hypertelorism (HP:0000316): a periorbital feature
    assert "Hypertelorism -> Periorbital (eyes, lids): rank" in text
    # another method: the bars follow it
    box = next(s for s in at.selectbox if s.label == "Map summarised per region")
    before = table[shares[0]].tolist()
    box.select_index(len(box.options) - 1).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "Region" in d.value.columns)
    assert table[shares[0]].tolist() != before


def test_per_photo_checks_on_demand(explain_page):
    """Off by default (no forward passes spent); on: a caption under every map (deletion against
    the random map, the library's numbers) and a table; IG/DeepLIFT carry their completeness."""
    at = explain_page
    at.session_state[state.KEEP_PREFIX + "explain.methods"] = ["saliency", "deeplift"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("random" in c.value for c in at.caption)
    assert "gmx.similarity.checks" not in [t.key for t in at.toggle]  # its own key
    assert at.toggle(key="gmx.explain.checks").label == explain_view.CHECKS_LABEL
    at.toggle(key="gmx.explain.checks").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    notes = [c.value for c in at.caption if "random (" in c.value]
    assert len(notes) == 3 * 2  # 3 syndromes x 2 methods
    assert sum("completeness residual" in n for n in notes) == 3  # DeepLIFT's only
    table = next(d.value for d in at.dataframe if "Random minus map" in d.value.columns)
    assert [m.split()[0] for m in table["Method"]] == ["Saliency", "DeepLIFT"] * 3
    want = (table["Random map's"] - table["Deletion AUC"]).to_numpy()
    assert np.allclose(table["Random minus map"].to_numpy(), want)
    assert table["Completeness residual"].isna().sum() == 3
    for target in ("contrast", "logit"):  # every target the grid explains can be checked
        at.sidebar.radio[0].set_value(target).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("random (" in c.value for c in at.caption), target
