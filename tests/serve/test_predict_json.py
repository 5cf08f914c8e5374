"""``gmx predict`` and ``POST /predict`` give one answer (gmx.serve.answers), calibration included."""

from __future__ import annotations

import json

import httpx
import pytest

from gmx.cli import main
from tests.serve.conftest import EXAMPLES, b64

#: Entries of ``gmx`` that belong to one request or one way of asking (not to the photo).
REQUEST_SPECIFIC = {"timings_s", "photo"}


@pytest.fixture(scope="module")
def server(serve):
    with serve() as s:
        yield s


def _without_request_specific(answer: dict) -> dict:
    return {**answer, "gmx": {k: v for k, v in answer["gmx"].items() if k not in REQUEST_SPECIFIC}}


def test_predict_cli_and_service_agree(server, capsys) -> None:
    photo = EXAMPLES[0]
    assert main(["predict", str(photo), "--top-k", "4"]) == 0
    cli = json.loads(capsys.readouterr().out)
    r = httpx.post(
        f"{server.url}/predict",
        json={"img": b64(photo), "case_id": photo.stem, "top_k": 4},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    served = r.json()
    assert cli["gmx"]["photo"] == str(photo) and "photo" not in served["gmx"]
    assert set(cli["gmx"]["timings_s"]) and set(served["gmx"]["timings_s"])
    assert _without_request_specific(served) == _without_request_specific(cli)
    # the photo-level extras both carry (photo_sha256 was missing from gmx predict before)
    for key in ("faces_found", "face_index", "faces", "face_doubts", "photo_sha256"):
        assert key in served["gmx"] and key in cli["gmx"], key


def test_predict_carries_gallery_calibration(server, demo_diagnoser) -> None:
    calibration = demo_diagnoser.gallery.calibration
    assert calibration is not None, "the demo gallery file stores its calibration"
    r = httpx.post(f"{server.url}/predict", json={"img": b64(EXAMPLES[1]), "top_k": 3}, timeout=120)
    assert r.status_code == 200, r.text
    data = r.json()
    cal = data["gmx"]["calibration"]
    assert cal["method"] == calibration.method
    assert cal["typical_distance"] == pytest.approx(calibration.typical_distance)
    assert isinstance(cal["not_closer_than_typical"], bool)
    syndromes = data["gmx"]["syndromes"]
    assert len(syndromes) == 3
    for entry in syndromes:
        expected = calibration.statement(entry["distance"]).to_dict()
        assert entry["calibration"] == json.loads(json.dumps(expected))
    # the service fields are unchanged: no calibration inside them
    assert all("calibration" not in s for s in data["suggested_syndromes_list"])


def test_predict_encoding_carries_calibration(server) -> None:
    enc = httpx.post(f"{server.url}/encode", json={"img": b64(EXAMPLES[0])}, timeout=120)
    assert enc.status_code == 200, enc.text
    r = httpx.post(
        f"{server.url}/predict_encoding", json={"encodings": enc.json()["encodings"]}, timeout=120
    )
    assert r.status_code == 200, r.text
    assert "calibration" in r.json()["gmx"]
    assert all("calibration" in s for s in r.json()["gmx"]["syndromes"])
