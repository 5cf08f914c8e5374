"""gmx serve over real HTTP: uvicorn on a free port, requests/httpx as the client."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import requests
from PIL import Image

from gmx.pipeline import Diagnoser
from gmx.serve.answers import ranking_json
from tests.align.test_align_io import _png_header
from tests.serve.conftest import EXAMPLES, b64

TOKEN = "s3cret-token-for-tests-0123456789"
SERVICE_KEYS = {
    "case_id",
    "model_version",
    "gallery_version",
    "suggested_syndromes_list",
    "suggested_genes_list",
    "suggested_patients_list",
}


def _png_b64(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _expected(diagnoser: Diagnoser, photo: bytes, case_id: str = "input") -> dict:
    """What ``gmx predict`` computes for the photo, one request at a time (service fields and
    the ranking's ``gmx`` block, calibration included; no face extras or timings)."""
    d = diagnoser.diagnose(photo)
    assert d.ok
    return ranking_json(d.ranking, diagnoser, case_id=case_id, demo=True)


@pytest.fixture(scope="module")
def server(serve):
    with serve(batch_window_ms=200) as s:
        yield s


def test_status_and_openapi(server) -> None:
    r = httpx.get(f"{server.url}/status")
    assert r.status_code == 200
    assert r.json()["status"] == "running"
    assert r.json()["gmx"]["demo"] is True
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/predict", "/encode", "/crop", "/explain", "/report", "/status"} <= set(paths)
    files = {
        p: set(paths[p]["post"]["responses"]["200"]["content"]) for p in ("/explain", "/report")
    }
    assert files == {
        "/explain": {"image/png", "application/octet-stream"},
        "/report": {"application/pdf", "text/html"},
    }
    assert {"400", "413", "422", "503"} <= set(paths["/report"]["post"]["responses"])


def test_gm_arc_client_gets_gmx_answer(server, demo_diagnoser) -> None:
    """GestaltMatcher-Arc's own client code (send_image_api.py): requests, json={"img": ...},
    HTTP Basic auth (ignored without a token)."""
    photo = EXAMPLES[0].read_bytes()
    r = requests.post(
        f"{server.url}/predict",
        json={"img": base64.b64encode(photo).decode("utf-8")},
        auth=requests.auth.HTTPBasicAuth("your_username", "your_password"),
        timeout=60,
    )
    assert r.status_code == 200
    data = r.json()
    assert set(data) >= SERVICE_KEYS
    first = data["suggested_syndromes_list"][0]
    assert set(first) == {
        "syndrome_name",
        "omim_id",
        "distance",
        "gestalt_score",
        "image_id",
        "subject_id",
    }
    assert first["gestalt_score"] == pytest.approx(1.3 - first["distance"], abs=1e-3)
    expected = _expected(demo_diagnoser, photo)
    for key in SERVICE_KEYS:
        assert data[key] == expected[key], key
    assert data["gmx"]["photo_sha256"] and data["gmx"]["faces_found"] == 1


def test_predict_options_and_data_uri(server) -> None:
    body = {
        "img": "data:image/jpeg;base64," + b64(EXAMPLES[1]),
        "case_id": "patient-7",
        "top_k": 2,
        "min_distance": 0.3,
    }
    data = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    assert data["case_id"] == "patient-7"
    assert len(data["suggested_syndromes_list"]) == 2
    assert data["gmx"]["min_distance"] == 0.3


def test_encode_is_gm_arc_dataframe_dict(server, demo_diagnoser) -> None:
    photo = EXAMPLES[2].read_bytes()
    r = httpx.post(f"{server.url}/encode", json={"img": b64(EXAMPLES[2])}, timeout=60)
    assert r.status_code == 200
    enc = r.json()["encodings"]
    assert list(enc) == ["img_name", "model", "flip", "gray", "class_conf", "representations"]
    variants = demo_diagnoser.ensemble.variants
    assert list(enc["model"]) == [str(i) for i in range(len(variants))]
    assert [enc["model"][str(i)] for i in range(len(variants))] == [f"m{v.model}" for v in variants]
    assert [enc["flip"][str(i)] for i in range(len(variants))] == [int(v.flip) for v in variants]
    assert [enc["gray"][str(i)] for i in range(len(variants))] == [int(v.grey) for v in variants]
    reps = np.array([enc["representations"][str(i)] for i in range(len(variants))])
    expected = demo_diagnoser.diagnose(photo).embeddings
    np.testing.assert_array_equal(reps.astype(np.float32), expected)
    classes = demo_diagnoser.models[0].card.classes
    assert len(enc["class_conf"]["0"]) == len(classes)


def test_crop_is_the_aligned_face(server, demo_diagnoser) -> None:
    r = httpx.post(f"{server.url}/crop", json={"img": b64(EXAMPLES[3])}, timeout=60)
    assert r.status_code == 200
    png = base64.b64decode(r.json()["crop"])
    crop = np.array(Image.open(io.BytesIO(png)))
    alignment, _ = demo_diagnoser.align(EXAMPLES[3].read_bytes())
    np.testing.assert_array_equal(crop, alignment.faces[0].image)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"img": "not base64 at all!"}, 400, "bad_request"),
        ({"img": base64.b64encode(b"hello, not an image").decode()}, 400, "bad_request"),
        ({"img": ""}, 400, "bad_request"),
        ({"image": "x"}, 400, "bad_request"),
        ({"img": 12}, 400, "bad_request"),
        ({"img": _png_b64(np.full((200, 200, 3), 128, np.uint8))}, 422, "no_face"),
        # a decompression bomb (10 G pixels declared in 100 bytes): refused from the header
        ({"img": base64.b64encode(_png_header(100_000, 100_000)).decode()}, 413, "too_large"),
        ({"img": base64.b64encode(_png_header(10_000, 5_000)).decode()}, 413, "too_large"),
    ],
)
def test_errors_are_json_with_status(server, plain_message, body, status, code) -> None:
    r = httpx.post(f"{server.url}/predict", json=body, timeout=60)
    assert r.status_code == status, r.text
    data = r.json()
    assert data["error"] == code and data["status"] == status
    plain_message(data["message"])


def test_corrupt_photo_and_missing_face_index(server, plain_message) -> None:
    jpeg = EXAMPLES[0].read_bytes()
    r = httpx.post(
        f"{server.url}/predict",
        json={"img": base64.b64encode(jpeg[: len(jpeg) // 3]).decode()},
        timeout=60,
    )
    assert r.status_code == 400
    plain_message(r.json()["message"])
    r = httpx.post(f"{server.url}/crop", json={"img": b64(EXAMPLES[0]), "face": 3}, timeout=60)
    assert r.status_code == 422
    assert "only 1 face" in plain_message(r.json()["message"])


def test_not_json_and_unknown_path(server) -> None:
    r = httpx.post(
        f"{server.url}/predict", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = httpx.get(f"{server.url}/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = httpx.get(f"{server.url}/predict")  # the framework's error, with its Allow header
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json() == {
        "error": "method_not_allowed",
        "message": "Method Not Allowed",
        "status": 405,
    }


def test_limits_413(serve, plain_message) -> None:
    photo = b64(EXAMPLES[0])
    with serve(max_body_bytes=len(photo) - 1) as s:
        r = httpx.post(f"{s.url}/predict", json={"img": photo}, timeout=60)
        assert r.status_code == 413
        plain_message(r.json()["message"])

        # chunked upload without Content-Length: refused while reading
        def chunks():
            data = json.dumps({"img": photo}).encode()
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        r = httpx.post(
            f"{s.url}/predict",
            content=chunks(),
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 413
    with serve(max_pixels=100 * 100) as s:
        r = httpx.post(f"{s.url}/predict", json={"img": photo}, timeout=60)
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert "more than the limit" in plain_message(r.json()["message"])


def test_slow_body_gets_408_not_a_hang(serve) -> None:
    with serve(body_read_timeout_s=0.5) as s:
        port = int(s.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"img": '
            )
            t0 = time.monotonic()
            # headers and body may arrive in separate packets: read until the body is in
            reply = ""
            while '"request_timeout"' not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk.decode("latin-1")
            # not a hang: the 0.5 s limit answers within seconds (generous for a loaded CI box)
            assert time.monotonic() - t0 < 30
        assert reply.startswith("HTTP/1.1 408")
        assert '"request_timeout"' in reply


def test_timeout_504(serve) -> None:
    with serve(timeout_s=0.001) as s:
        r = httpx.post(f"{s.url}/predict", json={"img": b64(EXAMPLES[0])}, timeout=60)
        assert r.status_code == 504 and r.json()["error"] == "timeout"


def test_overloaded_503(serve) -> None:
    with serve(max_pending=1, batching=False) as s:
        body = {"img": b64(EXAMPLES[0])}
        with ThreadPoolExecutor(6) as pool:
            codes = list(
                pool.map(lambda _: httpx.post(f"{s.url}/predict", json=body, timeout=60), range(6))
            )
        statuses = sorted(r.status_code for r in codes)
        assert 200 in statuses and 503 in statuses, statuses
        busy = next(r for r in codes if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and busy.json()["error"] == "overloaded"


def test_token_checked_on_every_request(serve, plain_message) -> None:
    with serve(token=TOKEN) as s:
        body = {"img": b64(EXAMPLES[0])}
        for path, method in (("/status", "GET"), ("/docs", "GET"), ("/predict", "POST")):
            r = httpx.request(method, f"{s.url}{path}", json=body if method == "POST" else None)
            assert r.status_code == 401, path
            assert r.json()["error"] == "unauthorized"
            assert "Bearer" in r.headers["www-authenticate"]
            plain_message(r.json()["message"])
        wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
        assert httpx.get(f"{s.url}/status", headers=wrong).status_code == 401
        # a refused request is answered before its body is read
        huge = httpx.post(f"{s.url}/predict", content=b"x" * 10_000_000)
        assert huge.status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{s.url}/status", headers=good).status_code == 200
        schema = httpx.get(f"{s.url}/openapi.json", headers=good).json()
        assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
        r = httpx.post(f"{s.url}/predict", json=body, headers=good, timeout=60)
        assert r.status_code == 200
        # GestaltMatcher-Arc's clients send HTTP Basic: the token as password works
        r = requests.post(
            f"{s.url}/predict",
            json=body,
            auth=requests.auth.HTTPBasicAuth("anyone", TOKEN),
            timeout=60,
        )
        assert r.status_code == 200
        bad = requests.get(f"{s.url}/status", auth=("anyone", "wrong"), timeout=60)
        assert bad.status_code == 401


def test_16_concurrent_equal_serial(serve, demo_diagnoser) -> None:
    """16 photos at once share forward passes (batches of more than one face), and every answer
    is exactly (bit for bit, unrounded per-variant distances included) the one-by-one answer."""
    photos = EXAMPLES[:16]
    assert len(photos) == 16
    serial = [
        (
            demo_diagnoser.diagnose(p.read_bytes()).embeddings,
            _expected(demo_diagnoser, p.read_bytes()),
        )
        for p in photos
    ]
    with serve(batch_window_ms=300, max_batch=16) as s:
        with ThreadPoolExecutor(16) as pool:
            answers = list(
                pool.map(
                    lambda p: httpx.post(f"{s.url}/predict", json={"img": b64(p)}, timeout=120),
                    photos,
                )
            )
        encoded = httpx.post(f"{s.url}/encode", json={"img": b64(photos[5])}, timeout=60).json()
        largest = httpx.get(f"{s.url}/status").json()["gmx"]["batching"]["per_model"][0]["largest"]
    assert largest > 1, "the requests were never batched"
    for r, (_, expected) in zip(answers, serial, strict=True):
        assert r.status_code == 200
        got = r.json()
        for key in SERVICE_KEYS:
            assert got[key] == expected[key]
        # the gmx block: unrounded distances and every variant's distance of each listed image
        assert {k: got["gmx"][k] for k in expected["gmx"]} == expected["gmx"]
    reps = np.array(
        [encoded["encodings"]["representations"][str(i)] for i in range(len(serial[5][0]))],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(reps, serial[5][0])


def test_one_at_a_time_mode_gives_the_same_answers(serve, demo_diagnoser) -> None:
    with serve(batching=False) as s:
        r = httpx.post(f"{s.url}/predict", json={"img": b64(EXAMPLES[4])}, timeout=60)
        status = httpx.get(f"{s.url}/status").json()
    assert status["gmx"]["batching"] == {"enabled": False}
    expected = _expected(demo_diagnoser, EXAMPLES[4].read_bytes())
    for key in SERVICE_KEYS:
        assert r.json()[key] == expected[key]


def test_predict_encoding_round_trip(server, plain_message) -> None:
    """GestaltMatcher-Arc's /predict_encoding: /encode's rows (as records, shuffled, or as the
    columns /encode returns) give the /predict answer."""
    img = b64(EXAMPLES[6])
    predicted = httpx.post(f"{server.url}/predict", json={"img": img}, timeout=60).json()
    columns = httpx.post(f"{server.url}/encode", json={"img": img}, timeout=60).json()["encodings"]
    records = [{c: columns[c][k] for c in columns} for k in columns["model"]]
    for encodings in (records[::-1], columns):
        r = httpx.post(f"{server.url}/predict_encoding", json={"encodings": encodings}, timeout=60)
        assert r.status_code == 200, r.text
        for key in SERVICE_KEYS:
            assert r.json()[key] == predicted[key], key
    for bad, fragment in (
        (records[:-1], "lack the variants"),
        ([*records, records[0]], "given twice"),
        ([{**records[0], "model": "m7"}, *records[1:]], "no variant model=m7"),
        ([{**records[0], "representations": [1.0, 2.0]}, *records[1:]], "finite numbers"),
        ([{**records[0], "img_name": "other"}, *records[1:]], "one case per request"),
    ):
        r = httpx.post(f"{server.url}/predict_encoding", json={"encodings": bad}, timeout=60)
        assert r.status_code == 400, r.text
        assert fragment in plain_message(r.json()["message"])
