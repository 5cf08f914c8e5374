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
    at.toggle(key=state.KEEP_PREFIX + "syndromes.compare").set_value(True).run()
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
    assert "Hypertelorism (HP:0000316)" in text and "Wide mouth (HP:0000154)" in text
    assert "patients" in text and "synthetic demo syndrome: no OMIM entry" in text
    at.sidebar.radio[1].set_value("contrast").run()
    assert not at.exception


def _shown_text(at: AppTest) -> str:
    """Everything a user reads on the page: texts, captions, widget labels and options, tables."""
    parts = [e.value for kind in ("markdown", "caption", "subheader", "info") for e in at.get(kind)]
    for kind in ("selectbox", "multiselect", "radio"):
        for w in at.get(kind):
            parts += [w.label, *map(str, w.options)]
    for image in at.image:
        parts += list(image.captions)
    for table in at.dataframe:
        parts += [table.value.to_string(), *map(str, table.value.columns)]
    return "\n".join(parts)


@pytest.mark.skipif(
    not (ROOT / "models" / "demo" / "syndromes.npz").exists(), reason="demo results not built"
)
def test_demo_names_methods_draws_regions_and_a_legend_per_tile(monkeypatch) -> None:
    import re

    monkeypatch.delenv("GMX_CONFIG", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    text = _shown_text(at)
    shown = at.multiselect[0].value
    assert "gradcam_signed" in shown
    for method in shown:  # ids such as gradcam_signed are never shown, display names are
        assert get_method(method).display_name in text
        assert not re.search(rf"(?<![\w-]){method}(?![\w-])", text), method
    tiles = [i for i in at.image if i.captions and i.captions[0] != "Composite face"][1:]
    assert len(tiles) == len(shown)
    legends = [c.value for c in at.caption if c.value.startswith(("viridis:", "PiYG:"))]
    assert len(legends) == len(tiles)  # one legend per tile
    assert any("Cyan outline: the known causal region" in c.value for c in at.caption)
    at.sidebar.toggle(key=state.KEEP_PREFIX + "syndromes.region").set_value(False).run()
    assert not any("Cyan outline" in c.value for c in at.caption)


def test_map_tile_outlines_the_known_region() -> None:
    """The demo's causal region is drawn on the tile (and only when asked)."""
    import numpy as np

    from gmx.aggregate import load_results
    from gmx.aggregate.views import REGION_COLOUR
    from gmx.config import DEMO_DIR
    from ui import syndromes_view

    results = load_results(DEMO_DIR / "syndromes.npz")
    mask = results.masks["SYN:0001"]
    drawn = syndromes_view.map_tile(results, "SYN:0001", "gradcam", "mean", opacity=0.6)
    plain = syndromes_view.map_tile(
        results, "SYN:0001", "gradcam", "mean", opacity=0.6, region=False
    )
    assert drawn is not None and plain is not None and drawn.region and not plain.region
    changed = np.any(drawn.image != plain.image, axis=-1)
    assert changed.any() and np.all(drawn.image[changed] == REGION_COLOUR)
    # the line runs along the region's border, not through it or far away
    inner = (
        mask
        & np.roll(mask, 1, 0)
        & np.roll(mask, -1, 0)
        & np.roll(mask, 1, 1)
        & np.roll(mask, -1, 1)
    )
    assert not changed[inner].any() and not changed[~mask].any()
    assert changed[mask & ~inner].mean() > 0.8  # contours are 8-connected, this border 4-
    assert syndromes_view.overlay_image(
        results, "SYN:0001", "gradcam", "mean", DEFAULT_PALETTE, 0.6
    ).shape == (
        112,
        112,
        3,
    )


@pytest.mark.skipif(
    not (ROOT / "models" / "demo" / "syndromes.npz").exists(), reason="demo results not built"
)
def test_chosen_syndrome_and_settings_survive_a_change_of_page(monkeypatch) -> None:
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/4_Syndromes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key=state.KEEP_PREFIX + "syndromes.syndrome").set_value("SYN:0003").run()
    at.sidebar.radio[1].set_value("std").run()
    at.sidebar.slider[0].set_value(0.3).run()
    at.toggle(key=state.KEEP_PREFIX + "syndromes.compare").set_value(True).run()
    at.selectbox(key=state.KEEP_PREFIX + "syndromes.second").set_value("SYN:0005").run()
    at.switch_page("pages/1_Diagnose.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/4_Syndromes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key=state.KEEP_PREFIX + "syndromes.syndrome").value == "SYN:0003"
    assert at.selectbox(key=state.KEEP_PREFIX + "syndromes.second").value == "SYN:0005"
    assert at.sidebar.radio[1].value == "std" and at.sidebar.slider[0].value == 0.3
    assert [s.value.split(" ·")[0] for s in at.subheader] == ["SYN:0003", "SYN:0005"]


def test_request_is_frozen_and_checked() -> None:
    import dataclasses

    from ui.syndromes_view import SyndromesRequest

    request = SyndromesRequest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.kind = "std"  # type: ignore[misc]
    for bad in ({"kind": "median"}, {"target": "x"}, {"opacity": 2.0}):
        with pytest.raises(ValueError):
            SyndromesRequest(**bad)  # type: ignore[arg-type]


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


def test_syndrome_results_follow_gmx_cache_folder(monkeypatch, tmp_path) -> None:
    """One cache-folder rule (gmx._io.user_cache_dir), and results the user asked for are kept
    even where the automatic caches are off."""
    from ui import syndromes_view

    monkeypatch.delenv("GMX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert syndromes_view.cache_root() == tmp_path / "xdg" / "gmx" / "syndromes"
    monkeypatch.setenv("GMX_NO_CACHE", "1")
    assert syndromes_view.cache_root() == tmp_path / "xdg" / "gmx" / "syndromes"
