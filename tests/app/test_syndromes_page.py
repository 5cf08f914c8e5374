"""The Syndromes page: compute on the tiny setup (with progress), then browse and compare; the demo
loads its committed results instantly."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from gmx.explain import get_method
from gmx.viz import DEFAULT_PALETTE
from ui import state

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "4_Syndromes.py")


def test_tiny_setup_compute_then_browse(tiny_setup, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No syndrome-level results" in i.value for i in at.info)
    # The tiny gallery has one subject per syndrome: only logit targets exist.
    at.sidebar.radio[0].set_value("logit").run()
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(tmp_path.glob("syndromes/*.npz"))
    assert len(at.subheader) == 1 and "T:1" in at.subheader[0].value
    assert len(at.dataframe) == 1
    at.sidebar.toggle[0].set_value(True).run()
    assert not at.exception
    assert len(at.subheader) == 2
    at.sidebar.radio[1].set_value("std").run()
    assert not at.exception


@pytest.mark.skipif(
    not (ROOT / "models" / "demo" / "syndromes.npz").exists(), reason="demo results not built"
)
def test_demo_results_load_instantly(monkeypatch) -> None:
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("No syndrome-level results" in i.value for i in at.info)
    assert "SYN:0001" in at.subheader[0].value
    text = " ".join(m.value for m in at.markdown)
    assert "HP:0000316" in text and "patients" in text
    at.sidebar.radio[1].set_value("contrast").run()
    assert not at.exception


@pytest.mark.skipif(
    not (ROOT / "models" / "demo" / "syndromes.npz").exists(), reason="demo results not built"
)
def test_demo_localisation_table_shows_the_stored_numbers(monkeypatch) -> None:
    """The held-out localisation table shows exactly the committed scores, with a verdict."""
    from gmx.aggregate import load_results
    from gmx.config import DEMO_DIR

    monkeypatch.delenv("GMX_CONFIG", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    tables = [d.value for d in at.dataframe if "finds its region?" in d.value.columns]
    assert len(tables) == 1
    shown = tables[0].set_index("method")
    loc = load_results(DEMO_DIR / "syndromes.npz").localisation
    assert loc is not None
    stored = {s.method: s for s in loc.scores if s.syndrome == "SYN:0001" and s.metric == "auroc"}
    assert len(shown) == len(stored) == 4
    for sc in stored.values():
        row = shown.loc[get_method(sc.method).display_name]
        assert row["AUROC"] == round(sc.own, 3)
        other = sc.null("other_maps")
        assert row["vs other syndromes' maps"].startswith(f"{other.difference:+.3f} [")
        beaten = all(c.above for c in sc.nulls)
        assert row["finds its region?"].startswith("yes") == beaten


def test_restricted_one_patient_syndromes_show_no_face(tiny_setup, monkeypatch, tmp_path) -> None:
    """Photos for computation only, one patient per syndrome: no composite, maps on a template."""
    import dataclasses

    import numpy as np

    from gmx.aggregate import load_results
    from gmx.gallery import load_gallery, save_gallery, template_face
    from ui import syndromes_view

    restricted = dataclasses.replace(load_gallery(tiny_setup.gallery_path), photos_visible=False)
    gallery_path = save_gallery(restricted, tmp_path / "restricted.sqlite")
    config = tmp_path / "gmx.toml"
    config.write_text(
        f'[models]\npaths = ["{tiny_setup.model_path}"]\n[gallery]\npath = "{gallery_path}"\n'
        '[runtime]\ndevice = "cpu"\n'
    )
    monkeypatch.setenv("GMX_CONFIG", str(config))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    at.sidebar.radio[0].set_value("logit").run()
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for image in at.image for c in image.captions]
    assert captions and "Composite face" not in captions  # the maps are shown, no composite
    assert any("No composite face" in c.value for c in at.caption)
    (path,) = (tmp_path / "cache").glob("syndromes/*.npz")
    results = load_results(path)
    assert results.composites == {}
    for syndrome in results.syndromes:
        assert np.array_equal(syndromes_view.background(results, syndrome), template_face())
        drawn = syndromes_view.overlay_image(
            results, syndrome, "gradcam", "mean", DEFAULT_PALETTE, 0.0
        )
        assert drawn is not None
        assert not any(np.array_equal(drawn, p) for p in restricted.photos)  # type: ignore[union-attr]
