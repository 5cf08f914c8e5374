"""The current photo across pages (issue 10 items 1, 2, 4, 7, 11 and the Diagnose export): AppTest on
the tiny configuration, the photo going in through the real uploader widget."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from gmx.config import load_config
from gmx.gallery import DEMO_REFERENCE_ID
from ui import resources, state

TIMEOUT = 120
ROOT = Path(__file__).resolve().parents[2]
DIAGNOSE = "pages/1_Diagnose.py"
EXPLAIN = "pages/2_Explain.py"
SIMILARITY = "pages/3_Similarity.py"


@pytest.fixture()
def app(tiny_setup, monkeypatch) -> AppTest:
    """The whole app (so that pages can be switched) on the tiny configuration, at Diagnose."""
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.switch_page(DIAGNOSE).run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, content, "image/jpeg")).run()
    _ok(at)
    return at


def _texts(at: AppTest) -> str:
    parts = [m.value for m in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error)]
    parts += [str(o) for s in at.selectbox for o in s.options]
    return "\n".join(parts)


def _keys(at: AppTest) -> list[str]:
    return [str(k) for k in at.session_state]


# --- item 4: validate before storing ------------------------------------------------------------
@pytest.mark.parametrize("target", [EXPLAIN, SIMILARITY])
def test_an_unreadable_upload_is_refused_and_never_stored(app, target):
    _upload(app, "broken.jpg", b"\xff\xd8\xff\xe0 truncated, not a JPEG")
    assert any("broken.jpg" in e.value and "cannot be used" in e.value for e in app.error)
    assert state.PHOTO_BYTES not in app.session_state
    app.switch_page(target).run()
    _ok(app)  # old code: Streamlit's crash box (the bytes were stored before being decoded)
    assert any("No photo yet" in i.value for i in app.info)


def test_a_refused_upload_keeps_the_current_photo(app, tiny_setup):
    _upload(app, "patient.jpg", tiny_setup.photo_jpeg)
    assert any("Top" in s.value for s in app.subheader)
    _upload(app, "notes.png", b"%PDF-1.4 not an image")
    assert any("notes.png" in e.value for e in app.error)
    assert app.session_state[state.PHOTO_BYTES] == tiny_setup.photo_jpeg
    assert any("still **patient.jpg**" in c.value for c in app.caption)


def test_a_stored_unreadable_photo_is_a_message_on_every_page(app):
    """However it got there, an unreadable photo gives a message and is dropped."""
    for page in (EXPLAIN, SIMILARITY, DIAGNOSE):
        app.session_state[state.PHOTO_BYTES] = b"GIF89a\x01"
        app.session_state[state.PHOTO_NAME] = "bad.gif"
        app.switch_page(page).run()
        _ok(app)
        assert any("bad.gif" in e.value and "cannot be used" in e.value for e in app.error)
        assert state.PHOTO_BYTES not in app.session_state


# --- item 2: forget -----------------------------------------------------------------------------
def _photo_everywhere(app: AppTest, jpeg: bytes) -> str:
    """Upload, then run Explain and Similarity so that every store holds something of the photo."""
    _upload(app, "patient.jpg", jpeg)
    sha = hashlib.sha256(jpeg).hexdigest()
    app.text_input[0].set_value("my case").run()  # a per-photo setting
    app.switch_page(EXPLAIN).run()
    _ok(app)
    app.switch_page(SIMILARITY).run()
    _ok(app)
    assert sha in resources.photo_store().photos()
    assert sha in resources.map_store().photos()
    kinds = {k[1] for k in resources.photo_store()._items if k[0] == sha}
    assert {"align", "diagnosis", "preview", "similarity_query", "similarity_pairs"} <= kinds
    assert any(sha in k for k in _keys(app))
    app.switch_page(DIAGNOSE).run()
    _ok(app)
    return sha


def _nothing_left(app: AppTest, sha: str, jpeg: bytes) -> None:
    assert sha not in resources.photo_store().photos()
    assert sha not in resources.map_store().photos()
    for key in _keys(app):
        assert sha not in key, key
        value = app.session_state[key]
        assert not isinstance(value, bytes) or value != jpeg, key
    assert state.PHOTO_BYTES not in app.session_state
    assert app.file_uploader[0].value is None  # the uploader holds no file any more
    app.switch_page(EXPLAIN).run()
    _ok(app)
    assert any("No photo yet" in i.value for i in app.info)
    assert not app.get("plotly_chart")


def test_forget_this_photo_forgets_everything(app, tiny_setup):
    sha = _photo_everywhere(app, tiny_setup.photo_jpeg)
    next(b for b in app.button if b.label == "Forget this photo").click().run()
    _ok(app)
    assert any("Upload a frontal face photo" in i.value for i in app.info)
    _nothing_left(app, sha, tiny_setup.photo_jpeg)


def test_the_uploaders_x_forgets_everything(app, tiny_setup):
    sha = _photo_everywhere(app, tiny_setup.photo_jpeg)
    # the uploader is empty after a change of page (Streamlit drops its state); upload again
    _upload(app, "patient.jpg", tiny_setup.photo_jpeg)
    app.file_uploader[0].set_value(None).run()  # the x next to the file
    _ok(app)
    _nothing_left(app, sha, tiny_setup.photo_jpeg)


# --- item 7: one near-duplicate setting for every page ------------------------------------------
def test_explain_and_similarity_rank_with_the_diagnose_toggle(app, tiny_setup, monkeypatch):
    # the tiny gallery's nearest image of syndrome one is at 0.005, the next at 0.011
    monkeypatch.setattr("ui.photo.NEAR_DUPLICATE_DISTANCE", 0.01)
    _upload(app, "patient.jpg", tiny_setup.photo_jpeg)
    off = app.dataframe[0].value
    app.toggle(key=state.DROP_NEAR_DUPLICATES).set_value(True).run()
    _ok(app)
    on = app.dataframe[0].value
    assert list(on["distance"]) != list(off["distance"])
    top = on.iloc[0]
    shown = f"{top['distance']:.3f}"
    old = f"{off.iloc[0]['distance']:.3f}"
    assert shown != old
    for page in (EXPLAIN, SIMILARITY):
        app.switch_page(page).run()
        _ok(app)
        text = _texts(app)
        assert str(top["syndrome"]) in text and f"distance {shown}" in text, page
        assert f"distance {old}" not in text, page  # old code: explained the near-duplicate
    app.switch_page(DIAGNOSE).run()
    assert app.toggle(key=state.DROP_NEAR_DUPLICATES).value is True  # a kept setting


# --- item 1: group photos -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def group_png(nba_group_photo) -> bytes:
    rng = np.random.default_rng(3)
    canvas, _ = nba_group_photo(3, rng, lambda: rng.uniform(40, 75))
    return _png(canvas)


def test_a_group_photo_offers_every_face_largest_first(app, group_png):
    _upload(app, "team.png", group_png)
    picker = app.radio[0]
    assert len(picker.options) == 3  # old code: one face, no picker
    assert picker.value == 0 and "largest" in picker.options[0]
    widths = [float(o.split("(")[1].split(" px")[0]) for o in picker.options]
    assert widths == sorted(widths, reverse=True)
    first = app.dataframe[0].value
    picker.set_value(1).run()
    _ok(app)
    assert app.session_state[state.FACE_INDEX] == 1
    second = app.dataframe[0].value
    assert list(first["distance"]) != list(second["distance"])
    app.switch_page(EXPLAIN).run()
    _ok(app)
    assert any("face 2" in c.value for c in app.caption)


# --- item 11: doubtful faces need a confirmation ------------------------------------------------
def test_a_doubtful_face_needs_the_users_confirmation(app):
    # scikit-image's colour wheel: BlazeFace finds a "face" (score 0.58) and the mesh fits
    _upload(app, "wheel.png", _png(np.ascontiguousarray(skdata.colorwheel()[..., :3])))
    assert any("really the patient's face" in w.value for w in app.warning)
    assert not any("Top" in s.value for s in app.subheader)  # old code: ranked at once
    assert not app.get("download_button")
    app.switch_page(EXPLAIN).run()
    _ok(app)
    assert any("really the patient's face" in w.value for w in app.warning)
    assert not app.get("plotly_chart")
    app.switch_page(DIAGNOSE).run()
    next(b for b in app.button if b.label.startswith("Yes, this is")).click().run()
    _ok(app)
    assert any("Top" in s.value for s in app.subheader)


# --- export -------------------------------------------------------------------------------------
@pytest.fixture()
def downloads(monkeypatch) -> list:
    """The in-memory media stores of AppTest runs (to read what a download button offers)."""
    stores: list = []

    class Recording(app_test_module.MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Recording)
    return stores


def _export(at: AppTest, stores: list) -> dict:
    button = next(b for b in at.get("download_button") if "service JSON" in b.proto.label)
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    return json.loads(stores[-1].get_file(file_id).content)


def test_the_export_has_a_neutral_case_id_and_says_demo(app, tiny_setup, downloads):
    _upload(app, "Jane_Doe_2024.jpg", tiny_setup.photo_jpeg)
    report = _export(app, downloads)
    assert "Jane" not in json.dumps(report)  # old code: case_id = the file name
    assert report["case_id"] == f"case-{hashlib.sha256(tiny_setup.photo_jpeg).hexdigest()[:8]}"
    assert report["gmx"]["demo"] is False
    app.text_input[0].set_value("GM-17").run()
    assert _export(app, downloads)["case_id"] == "GM-17"


def test_the_demo_export_carries_the_demo_flag(monkeypatch, downloads, clicked):
    for name in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY"):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(str(ROOT / DIAGNOSE), default_timeout=TIMEOUT).run()
    at.segmented_control[0].set_value("Demo faces").run()
    next(b for b in at.button if b.label == "syndrome C 1209").click().run()
    _ok(at)
    gmx = _export(at, downloads)["gmx"]
    assert gmx["demo"] is True and "not for clinical use" in gmx["demo_notice"]
    packet = _phenopacket(clicked(at, "Phenopacket"))
    assert [e.id for e in packet.meta_data.external_references] == [DEMO_REFERENCE_ID]
    assert "not for clinical use" in packet.meta_data.external_references[0].description
    tsv = clicked(at, "gene table").decode()
    assert tsv.startswith("# Synthetic demo, not for clinical use")


def _phenopacket(content: bytes):
    """The download parsed back into the schema's message, strictly (unknown fields fail)."""
    from google.protobuf.json_format import Parse
    from phenopackets import Phenopacket

    return Parse(content.decode(), Phenopacket(), ignore_unknown_fields=False)


def test_phenopacket_and_gene_table_are_built_on_click(app, tiny_setup, monkeypatch, clicked):
    """Two more downloads beside the JSON one: the Phenopacket and the gene table, deferred (no
    run builds them), with the same neutral case id; a click gets the real content."""
    from ui import diagnose_view

    built: list[str] = []
    for name in ("to_phenopacket_json", "to_gene_tsv"):
        real = getattr(diagnose_view, name)
        monkeypatch.setattr(
            diagnose_view, name, lambda *a, _r=real, _n=name, **k: built.append(_n) or _r(*a, **k)
        )
    _upload(app, "Jane_Doe_2024.jpg", tiny_setup.photo_jpeg)
    app.run()
    assert built == []
    labels = [b.proto.label for b in app.get("download_button")]
    assert any("Phenopacket" in x for x in labels) and any("gene table" in x for x in labels)
    case_id = f"case-{hashlib.sha256(tiny_setup.photo_jpeg).hexdigest()[:8]}"
    content = clicked(app, "Phenopacket")
    assert b"Jane" not in content
    packet = _phenopacket(content)
    assert packet.id == packet.subject.id == case_id
    syndromes = list(app.dataframe[0].value["syndrome"])
    assert [i.diagnosis.disease.label for i in packet.interpretations] == syndromes
    assert packet.interpretations[0].diagnosis.disease.id.startswith(("OMIM:", "gmx.gallery:"))
    assert not packet.meta_data.external_references  # not the demo
    tsv = clicked(app, "gene table").decode()
    assert "Jane" not in tsv
    header, *rows = [line.split("\t") for line in tsv.splitlines()]
    assert header[:3] == ["case_id", "gene", "syndrome"]
    assert rows and {r[0] for r in rows} == {case_id}
    assert [int(r[-1]) for r in rows] == list(range(1, len(rows) + 1))
    assert sorted(built) == ["to_gene_tsv", "to_phenopacket_json"]
    app.text_input[0].set_value("GM-17").run()
    assert _phenopacket(clicked(app, "Phenopacket")).id == "GM-17"


def test_a_photo_without_a_face_can_be_forgotten(app):
    _upload(app, "wall.png", _png(np.full((300, 300, 3), 90, np.uint8)))
    assert any("face" in w.value.lower() for w in app.warning)
    next(b for b in app.button if b.label == "Forget this photo").click().run()
    _ok(app)
    assert state.PHOTO_BYTES not in app.session_state
    assert app.file_uploader[0].value is None


# --- issue 12: confirm / reject the suggested facial features -----------------------------------
def _feature(at: AppTest, hpo_id: str):
    return next(r for r in at.radio if f"({hpo_id}" in r.label)


def test_marked_features_go_into_the_phenopacket_and_the_json(monkeypatch, downloads, clicked):
    """Present -> phenotypic feature, absent -> excluded feature; both in the JSON's gmx block."""
    for name in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY"):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(str(ROOT / DIAGNOSE), default_timeout=TIMEOUT).run()
    at.segmented_control[0].set_value("Demo faces").run()
    next(b for b in at.button if b.label == "syndrome C 1209").click().run()
    _ok(at)
    (expander,) = [e for e in at.expander if "Facial features" in e.label]
    radios = list(expander.radio)
    assert len(radios) >= 2
    assert all(r.value == "not assessed" for r in radios)
    assert list(radios[0].options) == ["not assessed", "present", "absent"]
    ids = [r.label.rsplit("(", 1)[1].split(")")[0].split(",")[0] for r in radios]
    assert len(set(ids)) == len(ids)  # each term once
    assert not list(_phenopacket(clicked(at, "Phenopacket")).phenotypic_features)
    _feature(at, ids[0]).set_value("present").run()
    _feature(at, ids[1]).set_value("absent").run()
    _ok(at)
    packet = _phenopacket(clicked(at, "Phenopacket"))
    assert [(f.type.id, f.excluded) for f in packet.phenotypic_features] == [
        (ids[0], False),
        (ids[1], True),
    ]
    assert all(f.type.label for f in packet.phenotypic_features)
    gmx = _export(at, downloads)["gmx"]
    assert gmx["confirmed_hpo"] == [ids[0]] and gmx["rejected_hpo"] == [ids[1]]


def test_feature_choices_belong_to_the_photo(app, tiny_setup, clicked):
    """Kept across pages, cleared by "Forget this photo"."""
    _upload(app, "patient.jpg", tiny_setup.photo_jpeg)
    _feature(app, "HP:0000316").set_value("present").run()
    _ok(app)
    app.switch_page(EXPLAIN).run()
    _ok(app)
    app.switch_page(DIAGNOSE).run()
    _ok(app)
    assert _feature(app, "HP:0000316").value == "present"
    features = _phenopacket(clicked(app, "Phenopacket")).phenotypic_features
    assert [(f.type.id, f.excluded) for f in features] == [("HP:0000316", False)]
    next(b for b in app.button if b.label == "Forget this photo").click().run()
    _ok(app)
    assert not any(state.HPO_CHOICE_PREFIX in k for k in _keys(app))
    _upload(app, "patient.jpg", tiny_setup.photo_jpeg)
    assert _feature(app, "HP:0000316").value == "not assessed"
    assert not list(_phenopacket(clicked(app, "Phenopacket")).phenotypic_features)
