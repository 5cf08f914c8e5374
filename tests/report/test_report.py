"""Case reports (gmx.report): contents, escaping, the face policy, the PDF, the CLI."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from gmx.cli import main
from gmx.config import GmxConfig, load_config
from gmx.explain import explain_targets
from gmx.gallery import FeatureChoices, calibrate
from gmx.panel import panel_rows
from gmx.pipeline import Diagnoser
from gmx.report import (
    CALIBRATION_COMPUTED,
    CALIBRATION_STORED,
    ReportMaps,
    build_report,
    report_calibration,
    to_html,
    to_pdf,
)
from gmx.viz import to_png_bytes

HOSTILE = "<script>alert('x')</script>\"'&<img src=x onerror=alert(2)>\u202e\u00e9\U0001f600"
METHODS = ("gradcam_signed", "saliency")
TINY_HPO = "HP:0000316"  # the tiny gallery's one HPO term (Test syndrome one)


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _squash(text: str) -> str:
    """Text without whitespace (table cells wrap long hashes over lines)."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def tiny(tiny_setup):
    """A diagnosis of the astronaut with the tiny model and gallery, and its maps."""
    cfg = GmxConfig(
        model_paths=(tiny_setup.model_path,), gallery_path=tiny_setup.gallery_path, device="cpu"
    )
    with Diagnoser.from_config(cfg) as diagnoser:
        d = diagnoser.diagnose(tiny_setup.photo_jpeg)
        variants = list(diagnoser.ensemble.variants[:1])
        rows, _ = panel_rows("similarity", d.ranking, diagnoser.gallery, variants, None, 2)
        grid = explain_targets(
            [m.model for m in diagnoser.models],
            d.face.image,
            [r.target for r in rows],
            variants,
            methods=METHODS,
        )
        yield SimpleNamespace(
            d=d,
            ensemble=diagnoser.ensemble,
            gallery=diagnoser.gallery,
            maps=ReportMaps(rows, grid, METHODS),
            gallery_file=tiny_setup.gallery_path,
        )


def _report(tiny, **kw):
    kw.setdefault("case_id", "case-test")
    kw.setdefault("maps", tiny.maps)
    return build_report(tiny.d, tiny.ensemble, tiny.gallery, gallery_file=tiny.gallery_file, **kw)


# --- contents ----------------------------------------------------------------------------------
def test_report_holds_ranking_features_maps_and_provenance(tiny):
    r = _report(tiny, top_k=3, choices=FeatureChoices((TINY_HPO,), ()))
    ranking = tiny.d.ranking
    assert [m.name for m in r.matches] == [m.name for m in ranking.syndromes[:3]]
    assert [m.distance for m in r.matches] == [m.distance for m in ranking.syndromes[:3]]
    assert [m.gestalt_score for m in r.matches] == pytest.approx(
        [1.3 - m.distance for m in r.matches]
    )
    assert [g.gene for g in r.genes] == [g.gene for g in ranking.genes[:3]]
    assert len(r.maps) == len(tiny.maps.rows) * len(METHODS)
    assert [m.method for m in r.maps[: len(METHODS)]] == list(METHODS)
    assert all(m.colour_bar_png.startswith(b"\x89PNG") for m in r.maps)
    assert r.map_reading
    p = r.provenance
    assert p.photo_sha256 == tiny.d.image_sha256 and len(p.photo_sha256) == 64
    assert p.ensemble_fingerprint == tiny.ensemble.fingerprint
    assert p.models == tuple((m.card.name, m.fingerprint) for m in tiny.ensemble.models)
    assert p.gallery_name == "tiny gallery" and p.gallery_version == "t1"
    assert p.gallery_metadata_sha256 is not None and len(p.gallery_metadata_sha256) == 64
    assert p.created_utc.endswith("+00:00")
    params = dict(p.parameters)
    assert params["top_k"] == "3" and params["face_in_report"] == "no"
    assert "gradcam_signed" in params["maps"]
    assert r.demo_notice is None


def test_report_region_relevance_per_map(tiny):
    """Issue 12: the report's region relevance section, one entry per map, with the syndrome's
    HPO features' regions ranked against the map (the numbers from gmx.regions)."""
    from gmx.regions import REGION_LABELS, region_masks, region_profile

    r = _report(tiny)
    assert len(r.regions) == len(tiny.maps.rows) * len(METHODS)
    assert r.region_note and "highlighted" in r.region_note
    regions = region_masks(tiny.d.face.landmarks_template)
    for k, g in enumerate(r.regions):
        row = tiny.maps.rows[k // len(METHODS)]
        method = METHODS[k % len(METHODS)]
        assert g.row_label == row.label
        prof = region_profile(regions, tiny.maps.grid[k // len(METHODS)][method].values)
        assert g.top == prof.summary and g.top.startswith("Top regions: ")
        assert any(lab in g.top for lab in REGION_LABELS.values())
    # the tiny gallery's syndrome one lists Hypertelorism: a periorbital feature
    one = [g for g in r.regions if "Test syndrome one" in g.row_label]
    assert one and all(
        g.features and g.features[0][0].startswith("Hypertelorism -> Periorbital") for g in one
    )
    html = to_html(r)
    assert "<h2>Region relevance</h2>" in html and "Hypertelorism -&gt; Periorbital" in html
    text = _squash_keep_spaces(_pdf_text(to_pdf(r)))
    assert "Region relevance" in text and "Top regions:" in text
    # without maps: no section content
    bare = _report(tiny, maps=None)
    assert bare.regions == () and "No explanation maps were included." in to_html(bare)


def test_report_carries_the_scorecard_verdicts_of_its_methods(tiny):
    """Issue 12: each map's method with its scorecard verdicts in words (not on this photo)."""
    from gmx.metrics.scorecard import Verdict

    card = SimpleNamespace(
        verdicts={
            "gradcam_signed": Verdict(True, False, None),
            "saliency": Verdict(True, True, False),
        },
        n_images=7,
        fingerprint="f" * 64,
    )
    r = _report(tiny, scorecard=card)
    names = [tiny.maps.grid[0][m].display_name for m in METHODS]
    assert r.scorecard == (
        (names[0], "passes sanity, not faithful"),
        (names[1], "passes sanity, faithful, does not localise"),
    )
    assert "7 held-out faces" in r.scorecard_note and "ffffffffffff" in r.scorecard_note
    html = to_html(r)
    assert "<h2>Scorecard verdicts</h2>" in html and "passes sanity, not faithful" in html
    text = _squash_keep_spaces(_pdf_text(to_pdf(r)))
    assert "Scorecard verdicts" in text and "passes sanity, faithful, does not localise" in text
    # the tiny models have no scorecard: the report says so; without maps there is nothing to badge
    none = _report(tiny)
    assert none.scorecard == () and "No scorecard was made with these models" in none.scorecard_note
    assert _report(tiny, maps=None, scorecard=card).scorecard_note == ""


def test_tiny_gallery_has_no_calibration_and_says_so(tiny):
    # the tiny gallery has one patient per syndrome: nothing to calibrate
    r = _report(tiny)
    assert all(m.calibrated is None for m in r.matches)
    assert r.calibration_note.startswith("none:")
    assert "No calibration" in to_html(r)


def test_confirmed_features_marked_rejected_left_out(tiny):
    r = _report(tiny, top_k=3, choices=FeatureChoices((), (TINY_HPO,)))
    assert TINY_HPO not in {f.hpo_id for f in r.features}
    assert r.n_rejected_features == 1
    assert TINY_HPO not in to_html(r)
    r = _report(tiny, top_k=3, choices=FeatureChoices((TINY_HPO, "HP:0000154"), ()))
    by_id = {f.hpo_id: f for f in r.features}
    assert by_id[TINY_HPO].confirmed
    assert by_id[TINY_HPO].syndromes == ("Test syndrome one",)
    assert by_id["HP:0000154"].confirmed and by_id["HP:0000154"].syndromes == ()  # user's own


def test_build_report_refuses_bad_input(tiny):
    with pytest.raises(ValueError, match="top_k"):
        _report(tiny, top_k=0)
    no_face = dataclasses.replace(tiny.d, face_index=5, ranking=None, embeddings=None)
    with pytest.raises(ValueError, match="no ranking"):
        build_report(no_face, tiny.ensemble, tiny.gallery, case_id="c")


def test_metadata_checksum_of_a_missing_file_is_none(tmp_path, caplog):
    from gmx.report import gallery_metadata_sha256

    assert gallery_metadata_sha256(tmp_path / "moved.sqlite") is None
    assert "cannot read the metadata checksum" in caplog.text


# --- the face is left out by default ------------------------------------------------------------
def test_face_left_out_by_default(tiny):
    face_png = to_png_bytes(tiny.d.face.image)
    r = _report(tiny)
    assert r.face_png is None
    html = to_html(r)
    assert base64.b64encode(face_png).decode() not in html
    assert "Aligned face" not in html
    # every map tile is the colour map alone: no face pixel went into it
    for m in r.maps:
        tile = np.asarray(Image.open(io.BytesIO(m.png)).convert("RGB"))
        colours = {tuple(c) for c in tile.reshape(-1, 3)}
        lut = tiny_lut(m)
        assert colours <= lut, f"{m.method}: pixels outside the colour map (face blended in?)"
    with_face = _report(tiny, include_face=True)
    assert with_face.face_png == face_png
    assert base64.b64encode(face_png).decode() in to_html(with_face)
    assert dict(with_face.provenance.parameters)["face_in_report"] == "yes"
    # the PDF holds the face's pixels only when asked; the maps are then drawn over the face
    face = tiny.d.face.image
    assert not any(np.array_equal(img, face) for img in _pdf_images(to_pdf(r)))
    assert any(np.array_equal(img, face) for img in _pdf_images(to_pdf(with_face)))
    assert with_face.maps[0].png != r.maps[0].png


def tiny_lut(m) -> set[tuple[int, int, int]]:
    from gmx.viz import Palette, colormap_lut

    return {tuple(int(v) for v in c) for c in colormap_lut(Palette().cmap(m.signed))}


def _pdf_images(data: bytes) -> list[np.ndarray]:
    """Every picture of a PDF as RGB pixels."""
    from pypdf import PdfReader

    pages = PdfReader(io.BytesIO(data)).pages
    return [np.asarray(img.image.convert("RGB")) for page in pages for img in page.images]


# --- hostile strings ----------------------------------------------------------------------------
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.csp: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "meta" and ("http-equiv", "Content-Security-Policy") in attrs:
            self.csp.append(dict(attrs)["content"])
        self.handlers += [k for k, _ in attrs if k.lower().startswith("on")]


def _hostile(r):
    matches = tuple(
        dataclasses.replace(m, name=HOSTILE, syndrome_id=HOSTILE, omim=HOSTILE, genes=(HOSTILE,))
        for m in r.matches
    )
    genes = tuple(dataclasses.replace(g, gene=HOSTILE, syndrome=HOSTILE) for g in r.genes)
    features = tuple(
        dataclasses.replace(f, display=HOSTILE, syndromes=(HOSTILE,)) for f in r.features
    )
    maps = tuple(
        dataclasses.replace(
            m,
            row_label=HOSTILE,
            method_name=HOSTILE,
            units=HOSTILE,
            legend=HOSTILE,
            reading=HOSTILE,
        )
        for m in r.maps
    )
    regions = tuple(
        dataclasses.replace(g, row_label=HOSTILE, method_name=HOSTILE, top=HOSTILE,
                            features=((HOSTILE, True), (HOSTILE, False)))
        for g in r.regions
    )  # fmt: skip
    prov = dataclasses.replace(
        r.provenance,
        gallery_name=HOSTILE,
        calibration=HOSTILE,
        parameters=((HOSTILE, HOSTILE),),
        models=((HOSTILE, HOSTILE),),
    )
    return dataclasses.replace(
        r,
        case_id=HOSTILE,
        demo_notice=HOSTILE,
        matches=matches,
        genes=genes,
        features=features,
        maps=maps,
        map_reading=HOSTILE,
        calibration_note=HOSTILE,
        provenance=prov,
        regions=regions,
        region_note=HOSTILE,
    )


def test_html_escapes_hostile_strings(tiny):
    r = _hostile(_report(tiny, choices=FeatureChoices((TINY_HPO,), ())))
    html = to_html(r)
    assert "<script" not in html.lower()
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    parser = _Tags()
    parser.feed(html)
    assert set(parser.tags) <= {
        "html", "head", "meta", "title", "style", "body", "div", "h1", "h2", "p", "b", "table",
        "thead", "tbody", "tr", "th", "td", "img", "ol", "ul", "li",
    }  # fmt: skip
    assert parser.handlers == []
    # no script, no request, even if escaping failed
    assert len(parser.csp) == 1 and parser.csp[0].startswith("default-src 'none';")
    # every picture is inline
    assert re.findall(r'<img src="([^"]{0,22})', html) == ["data:image/png;base64,"] * html.count(
        "<img "
    )


def test_pdf_takes_hostile_strings_as_text(tiny):
    r = _hostile(_report(tiny))
    text = _pdf_text(to_pdf(r))
    assert "<script>alert('x')</script>" in text


# --- PDF -------------------------------------------------------------------------------------------
def test_pdf_opens_with_provenance_and_top_syndrome(tiny):
    r = _report(tiny, top_k=3)
    data = to_pdf(r)
    assert data.startswith(b"%PDF-")
    text = _pdf_text(data)
    assert "Provenance" in text
    for label, _value in r.provenance.items():
        assert label in text
    flat = _squash(text)
    assert tiny.d.image_sha256 in flat
    assert tiny.ensemble.fingerprint in flat
    assert _squash(r.matches[0].name) in flat
    assert "Grad-CAM (signed)" in text


# --- the demo: a held-out photo ----------------------------------------------------------------------
@pytest.mark.slow
def test_report_of_a_held_out_demo_photo():
    from ui.examples import example_files

    cfg = load_config({})
    assert cfg.is_demo
    photo = next(p for p in example_files() if p.name.startswith("syndrome_A_"))
    t0 = time.perf_counter()
    with Diagnoser.from_config(cfg) as diagnoser:
        d = diagnoser.diagnose(photo.read_bytes())
        variants = list(diagnoser.ensemble.variants)
        rows, _ = panel_rows("similarity", d.ranking, diagnoser.gallery, variants, None, 2)
        grid = explain_targets(
            [m.model for m in diagnoser.models],
            d.face.image,
            [r.target for r in rows],
            variants,
            methods=METHODS,
        )
        t1 = time.perf_counter()
        r = build_report(
            d,
            diagnoser.ensemble,
            diagnoser.gallery,
            case_id="demo-A",
            maps=ReportMaps(rows, grid, METHODS),
            demo=True,
            gallery_file=cfg.gallery_path,
        )
        pdf, html = to_pdf(r), to_html(r)
        t2 = time.perf_counter()
    assert r.matches[0].syndrome_id == "SYN:0001"  # the photo's own syndrome (held out)
    assert all(m.calibrated is not None for m in r.matches)
    assert r.matches[0].calibrated.ppv is not None
    assert r.demo_notice and r.demo_notice in html
    # the committed demo scorecard was made with these models: every map's method has verdicts
    assert len(r.scorecard) == len(r.maps) // max(1, len({m.row_label for m in r.maps}))
    assert all(words != "not scored" for _, words in r.scorecard), r.scorecard
    text = _pdf_text(pdf)
    assert "Synthetic demo, not for clinical use" in _squash_keep_spaces(text)
    assert "Provenance" in text and "PPV" in text
    # measured on a loaded 2-core CPU box: ~2-3 s for build + render (maps and diagnosis before)
    assert t2 - t1 < 30, f"report build+render took {t2 - t1:.1f} s (after {t1 - t0:.1f} s)"


def _squash_keep_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_report_calibration_uses_a_stored_calibration(tiny):
    demo = load_config({})
    from gmx.gallery import load_gallery

    gallery = load_gallery(demo.gallery_path)
    cal = calibrate(gallery)
    stored = SimpleNamespace(calibration=cal)
    got, words = report_calibration(stored)  # type: ignore[arg-type]
    assert got is cal and words.startswith(CALIBRATION_STORED)
    # the demo gallery ships a held-out calibration; without it, one is computed from the gallery
    got, words = report_calibration(gallery)
    assert got is gallery.calibration and words.startswith(CALIBRATION_STORED)
    assert f"{gallery.calibration.n_images} held-out images counted" in words
    bare = dataclasses.replace(gallery, calibration=None)
    got, words = report_calibration(bare)
    assert got is not None and words.startswith(CALIBRATION_COMPUTED)
    assert f"{cal.n_images} gallery images counted" in words


# --- CLI ---------------------------------------------------------------------------------------
def _cli(tiny_setup, photo: Path, out: Path, *more: str) -> int:
    return main(
        [
            "--device",
            "cpu",
            "report",
            str(photo),
            "--out",
            str(out),
            "--models",
            str(tiny_setup.model_path),
            "--gallery",
            str(tiny_setup.gallery_path),
            *more,
        ]
    )


def test_cli_writes_html_and_pdf(tmp_path, tiny_setup):
    photo = tmp_path / "patient.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    out = tmp_path / "case.html"
    assert (
        _cli(tiny_setup, photo, out, "--methods", "gradcam", "--top-k", "2", "--hpo", TINY_HPO) == 0
    )
    html = out.read_text(encoding="utf-8")
    assert "Grad-CAM" in html and "Provenance" in html and "Hypertelorism" in html
    assert "patient.jpg" not in html  # the file name is not the case id
    out = tmp_path / "case.pdf"
    assert _cli(tiny_setup, photo, out, "--methods", "--include-face") == 0
    text = _pdf_text(out.read_bytes())
    assert "Aligned face" in text and "No explanation maps" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.html", "case.pdf", "patient.jpg"]


@pytest.mark.parametrize(
    ("name", "more", "expected"),
    [
        ("case.docx", (), "unknown report format '.docx'"),
        ("case", (), "unknown report format '(no extension)'"),
        ("case.pdf", ("--methods", "nosuch"), "unknown method(s) nosuch"),
        ("case.pdf", ("--top-k", "0"), "--top-k must be >= 1"),
    ],
)
def test_cli_refuses_bad_arguments_before_work(
    tmp_path, tiny_setup, caplog, plain_message, name, more, expected
):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    assert _cli(tiny_setup, photo, tmp_path / name, *more) == 2
    assert expected in plain_message(caplog.records[-1].getMessage())
    assert not (tmp_path / name).exists()
    assert "Loading model" not in caplog.text  # refused before any model was loaded


def test_cli_unreadable_photo_and_no_face(tmp_path, tiny_setup, caplog, plain_message):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo at all")
    out = tmp_path / "case.pdf"
    assert _cli(tiny_setup, junk, out) == 2
    plain_message(caplog.records[-1].getMessage())
    assert "Loading model" not in caplog.text
    assert _cli(tiny_setup, tmp_path / "missing.jpg", out) == 2
    assert "cannot read the photo" in plain_message(caplog.records[-1].getMessage())
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((160, 160, 3), 128, np.uint8)).save(grey)
    caplog.clear()
    assert _cli(tiny_setup, grey, out) == 1
    assert "No face found" in plain_message(caplog.records[-1].getMessage())
    assert not out.exists()
