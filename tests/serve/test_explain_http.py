"""POST /explain over real HTTP: the PNG grid and the .npz, with provenance."""

from __future__ import annotations

import hashlib
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import EXAMPLES, b64


@pytest.fixture(scope="module")
def server(serve):
    with serve() as s:
        yield s


def test_explain_png_grid(server) -> None:
    r = httpx.post(
        f"{server.url}/explain",
        json={"img": b64(EXAMPLES[0]), "methods": ["saliency", "gradcam"], "top_k": 2},
        timeout=300,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert 'filename="gmx_explain_input.png"' in r.headers["content-disposition"]
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG" and image.width > 3 * 112
    provenance = json.loads(r.headers["x-gmx-provenance"])
    assert provenance["photo_sha256"] == hashlib.sha256(EXAMPLES[0].read_bytes()).hexdigest()
    assert provenance["methods"] == ["saliency", "gradcam"]
    assert len(provenance["syndromes"]) == 2 and provenance["demo"] is True


def test_explain_npz_holds_maps_and_provenance(server) -> None:
    body = {
        "img": b64(EXAMPLES[1]),
        "methods": ["saliency"],
        "top_k": 3,
        "format": "npz",
        "case_id": "case/1",
    }
    r = httpx.post(f"{server.url}/explain", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert 'filename="gmx_explain_case_1.npz"' in r.headers["content-disposition"]
    with np.load(io.BytesIO(r.content)) as npz:
        provenance = json.loads(str(npz["provenance"]))
        index = json.loads(str(npz["index"]))
        maps = [npz[f"r{i}_saliency_values"] for i in range(3)]
    assert provenance["case_id"] == "case/1" and provenance["demo"] is True
    assert provenance["photo_sha256"] == hashlib.sha256(EXAMPLES[1].read_bytes()).hexdigest()
    assert [e["row"] for e in index] == [0, 1, 2]
    assert all(m.shape == (112, 112) and np.isfinite(m).all() for m in maps)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"methods": ["no_such_method"]}, "Unknown explanation method"),
        ({"format": "gif"}, "format must be one of"),
        ({"target": "nonsense"}, "target must be one of"),
        ({"methods": []}, "methods"),
    ],
)
def test_explain_bad_options_400(server, plain_message, change, fragment) -> None:
    r = httpx.post(f"{server.url}/explain", json={"img": b64(EXAMPLES[0]), **change}, timeout=300)
    assert r.status_code == 400, r.text
    assert fragment in plain_message(r.json()["message"])


def test_explain_time_limit_504(serve) -> None:
    with serve(explain_timeout_s=0.001) as s:
        r = httpx.post(f"{s.url}/explain", json={"img": b64(EXAMPLES[0])}, timeout=300)
    assert r.status_code == 504 and r.json()["error"] == "timeout"
