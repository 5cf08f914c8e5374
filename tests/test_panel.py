"""gmx.panel: the Explain grid's request, scales, labels and exports (no model needed)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from gmx import panel, viz
from gmx.explain import AttributionMap, LogitTarget
from gmx.gallery import SyndromeMatch


def _match(rank: int, name: str) -> SyndromeMatch:
    return SyndromeMatch(
        rank=rank,
        syndrome_id=f"S{rank}",
        name=name,
        omim=None,
        distance=0.4 + rank / 100,
        gestalt_score=0.9,
        image_id=f"img{rank}",
        subject_id=f"p{rank}",
        image_index=rank,
    )


def _map(method: str, scale: float, signed: bool, seed: int = 0) -> AttributionMap:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(112, 112)).astype(np.float32) * scale
    if not signed:
        v = np.abs(v)
    return AttributionMap(method, method.title(), "t", v, v, signed)


def test_default_colour_scale_is_shared_per_method() -> None:
    assert panel.SCALE_MODES[panel.DEFAULT_SCALE] == "method"
    assert panel.PanelRequest().share == "method"


def test_fullgrad_never_blanks_a_shared_scale() -> None:
    """FullGrad (other units, ~10^4 larger) gets its own scale; the attributions keep theirs."""
    maps = [
        _map("deeplift", 0.01, True, 0),
        _map("integrated_gradients", 0.01, True, 1),
        _map("fullgrad", 100.0, False, 2),
        _map("saliency", 5.0, False, 3),
    ]
    _, scales = panel.display_maps(maps, "all", "both")
    deeplift, ig, fullgrad, saliency = scales
    assert deeplift == ig  # same units: one scale
    assert deeplift.vmax < 0.1  # not FullGrad's or Saliency's limit
    assert fullgrad.vmax > 10 and saliency.vmax < 50
    # the attributions are visible: their values reach the ends of their colour scale
    assert np.abs(maps[0].values).max() >= deeplift.vmax


def test_contrast_rows_say_what_they_are_contrasted_with() -> None:
    rows = [
        panel.PanelRow(_match(r, n), LogitTarget(r, label=n))
        for r, n in ((1, "Alpha syndrome"), (2, "Beta syndrome"), (3, "Gamma syndrome"))
    ]
    contrast = panel.contrast_rows(rows)
    assert [r.label for r in contrast] == [
        "#1 Alpha syndrome rather than #2 Beta syndrome",
        "#2 Beta syndrome rather than #3 Gamma syndrome",
    ]
    text = panel.reading(contrast[0], True, viz.PALETTES[viz.DEFAULT_PALETTE])
    assert "Alpha syndrome" in text and "Beta syndrome" in text and "green" in text
    assert rows[0].label == "#1 Alpha syndrome"


def test_request_slow_methods_include_those_chosen_in_the_list() -> None:
    req = panel.PanelRequest(methods=("saliency", "occlusion"), slow=False)
    assert req.slow_methods == ("occlusion",) and req.fast_methods == ("saliency",)
    assert panel.PanelRequest(methods=("saliency",), slow=True).slow_methods == panel.SLOW_METHODS
    assert req.params["occlusion"] == {"window": 10, "stride": 5, "rerank": False}
    for bad in ({"sign": "up"}, {"scale": "x"}, {"palette": "jet"}, {"opacity": 2.0}):
        with pytest.raises(ValueError):
            panel.PanelRequest(**bad)  # type: ignore[arg-type]


def test_palette_one_choice_for_signed_and_unsigned_maps() -> None:
    p = viz.Palette("RdBu", "inferno")
    assert p.cmap(True) == "RdBu" and p.cmap(False) == "inferno"
    with pytest.raises(ValueError, match="diverging"):
        viz.Palette("viridis", "inferno")
    with pytest.raises(ValueError, match="sequential"):
        viz.Palette("PiYG", "RdBu")
    assert all(isinstance(p, viz.Palette) for p in viz.PALETTES.values())


def test_colour_bar_and_legend_text() -> None:
    bar = viz.colour_bar("PiYG", 64, 5)
    lut = viz.colormap_lut("PiYG", 64)
    assert bar.shape == (5, 64, 3) and bar.dtype == np.uint8
    assert (bar[0, 0] == lut[0]).all() and (bar[-1, -1] == lut[-1]).all()
    assert viz.legend_text(viz.Scale(-0.5, 0.5, True), "PiYG") == "pink \u22120.5 · 0 · +0.5 green"
    assert viz.legend_text(viz.Scale(0.0, 2.0), "viridis") == "purple 0 · 2 yellow"


def _grid(signed_scale: float = 0.01):
    rows = [
        panel.PanelRow(_match(r, n), LogitTarget(r, label=n))
        for r, n in ((1, "Alpha syndrome"), (2, "Beta syndrome"))
    ]
    grid = [
        {
            "deeplift": _map("deeplift", signed_scale, True, i),
            "fullgrad": _map("fullgrad", 9, False),
        }
        for i in range(2)
    ]
    return rows, grid


def test_grid_png_is_labelled_with_demo_notice_and_provenance() -> None:
    face = np.full((112, 112, 3), 128, np.uint8)
    rows, grid = _grid()
    plain = Image.open(
        io.BytesIO(panel.grid_png(face, rows, grid, ["deeplift", "fullgrad"], demo=False))
    )
    demo = Image.open(
        io.BytesIO(
            panel.grid_png(
                face,
                rows,
                grid,
                ["deeplift", "fullgrad"],
                demo=True,
                provenance={"models": "m 123", "gallery": "g v1", "photo_sha256": "ab" * 32},
            )
        )
    )
    a, b = np.asarray(plain.convert("RGB")), np.asarray(demo.convert("RGB"))
    tile = 224
    # label column + face + 2 methods, wider than the bare montage of the old export
    assert a.shape[1] == panel.PNG_LABEL_WIDTH + 3 * (tile + panel.PNG_PAD) + panel.PNG_PAD
    assert b.shape[0] > a.shape[0]  # demo band and provenance lines
    assert tuple(b[2, 2]) == (255, 236, 179) and tuple(a[2, 2]) == (255, 255, 255)
    # the label column holds text for each row (not a blank margin)
    assert (a[:, : panel.PNG_LABEL_WIDTH] < 128).any()
    # a colour bar per method column: the palette's two ends appear in the header area
    lut = viz.colormap_lut("PiYG", tile)
    assert (a == lut[0]).all(axis=2).any() and (a == lut[-1]).all(axis=2).any()
    with pytest.raises(ValueError):
        panel.grid_png(face, rows, grid[:1], ["deeplift"])


def test_maps_npz_carries_the_demo_flag() -> None:
    rows, grid = _grid()
    for demo in (True, False):
        blob = panel.maps_npz(rows, grid, provenance={"models": "m"}, demo=demo)
        with np.load(io.BytesIO(blob)) as z:
            prov = json.loads(str(z["provenance"]))
        assert prov["demo"] is demo and prov["models"] == "m"
        assert ("notice" in prov) is demo


#: The provenance keys of the Explain page's downloads (unchanged since the page built them itself).
PAGE_PROVENANCE = ["photo_sha256", "models", "gallery", "face_index", "variants", "target"]


def test_explanation_provenance_of_the_page_and_the_service() -> None:
    """One function builds the provenance of the Explain page's downloads and of the service's
    ``/explain``: the page's keys as before, the service's the same with the gmx version and case
    id first and the methods and syndromes last, equal where they overlap."""
    from types import SimpleNamespace

    from gmx import __version__

    card = SimpleNamespace(name="arc")
    diagnoser = SimpleNamespace(
        models=[SimpleNamespace(card=card, fingerprint="f" * 64)],
        gallery=SimpleNamespace(name="demo", version="v2"),
    )
    diagnosis = SimpleNamespace(image_sha256="ab" * 32, face_index=1)
    variants = [SimpleNamespace(label="orig"), SimpleNamespace(label="flip")]
    rows, _ = _grid()
    page = panel.explanation_provenance(diagnosis, diagnoser, variants, "logit")
    service = panel.explanation_provenance(
        diagnosis, diagnoser, variants, "logit", case_id="c1", methods=("saliency",), rows=rows
    )
    assert list(page) == PAGE_PROVENANCE
    assert list(service) == ["gmx", "case_id", *PAGE_PROVENANCE, "methods", "syndromes"]
    assert {k: service[k] for k in page} == page
    assert page == {
        "photo_sha256": "ab" * 32,
        "models": ["arc " + "f" * 12],
        "gallery": "demo v2",
        "face_index": 1,
        "variants": ["orig", "flip"],
        "target": "logit",
    }
    assert service["gmx"] == __version__ and service["case_id"] == "c1"
    assert service["methods"] == ["saliency"] and service["syndromes"] == [r.label for r in rows]


def test_panel_rows_by_target_kind(tiny_setup) -> None:
    from gmx.gallery import load_gallery, rank

    gallery = load_gallery(tiny_setup.gallery_path)
    ranking = rank(np.asarray(gallery.embeddings[0]), gallery)
    sim, _ = panel.panel_rows("similarity", ranking, gallery, gallery.variants, None, 2)
    con, _ = panel.panel_rows("contrast", ranking, gallery, gallery.variants, None, 2)
    logit, skipped = panel.panel_rows("logit", ranking, gallery, gallery.variants, None, 2)
    assert len(sim) == len(con) == 2 and all(r.versus is not None for r in con)
    assert con[0].versus == sim[1].match
    assert logit == [] and len(skipped) == 2
    with pytest.raises(ValueError):
        panel.panel_rows("nope", ranking, gallery, gallery.variants, None, 2)
