"""POST /report over real HTTP: the case report (gmx.report) as PDF or HTML, and its errors."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import EXAMPLES, b64

TOKEN = "another-s3cret-token-for-report-tests"


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _squash(text: str) -> str:
    """Text without whitespace (table cells wrap long hashes over lines)."""
    return re.sub(r"\s+", "", text)


def _blank_png_b64() -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def server(serve):
    with serve() as s:
        yield s


def test_report_pdf_has_provenance_and_photo_hash(server) -> None:
    photo = EXAMPLES[0]
    body = {"img": b64(photo), "format": "pdf", "methods": ["saliency"], "top_k": 3, "rows": 1}
    r = httpx.post(f"{server.url}/report", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert f'filename="gmx_report_case-{sha[:8]}.pdf"' in r.headers["content-disposition"]
    assert r.content.startswith(b"%PDF")
    text = _pdf_text(r.content)
    assert "Provenance" in text and "Saliency" in text
    assert sha in _squash(text)
    assert "Synthetic demo" in text  # the demo notice
    provenance = json.loads(r.headers["x-gmx-provenance"])
    assert provenance["Photo SHA-256"] == sha and provenance["demo"] is True
    assert provenance["case_id"] == f"case-{sha[:8]}"


def test_report_html_content_type_case_id_and_hpo(server) -> None:
    photo = EXAMPLES[1]
    body = {
        "img": b64(photo),
        "format": "html",
        "methods": [],
        "top_k": 2,
        "case_id": "GM-17",
        "hpo": ["HP:0000316"],
    }
    r = httpx.post(f"{server.url}/report", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert 'filename="gmx_report_GM-17.html"' in r.headers["content-disposition"]
    html = r.text
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "GM-17" in html and "Provenance" in html and "HP:0000316" in html
    assert hashlib.sha256(photo.read_bytes()).hexdigest() in html
    assert "<script" not in html.lower()


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"format": "docx"}, 400, "bad_request"),
        ({"methods": ["no_such_method"]}, 400, "bad_request"),
        ({"hpo": ["HP:12"]}, 400, "bad_request"),
        ({"top_k": 0}, 400, "bad_request"),
        ({"img": "not base64 at all!"}, 400, "bad_request"),
        ({"img": _blank_png_b64()}, 422, "no_face"),
        ({"face": 3}, 422, "no_face"),
    ],
)
def test_report_errors(server, plain_message, change, status, code) -> None:
    body = {"img": b64(EXAMPLES[0]), "methods": [], **change}
    r = httpx.post(f"{server.url}/report", json=body, timeout=120)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["status"] == status
    plain_message(r.json()["message"])


def test_report_limits_token_timeout_overload(serve) -> None:
    body = {"img": b64(EXAMPLES[0]), "methods": []}
    with serve(max_body_bytes=1_000) as s:
        r = httpx.post(f"{s.url}/report", json=body, timeout=60)
        assert r.status_code == 413 and r.json()["error"] == "too_large"
    with serve(token=TOKEN) as s:
        r = httpx.post(f"{s.url}/report", json=body, timeout=60)
        assert r.status_code == 401
        ok = httpx.post(
            f"{s.url}/report",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=300,
        )
        assert ok.status_code == 200 and ok.content.startswith(b"%PDF")
    with serve(explain_timeout_s=0.001) as s:
        r = httpx.post(f"{s.url}/report", json=body, timeout=60)
        assert r.status_code == 504 and r.json()["error"] == "timeout"
    with serve(max_explain_pending=1, batching=False) as s:
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(lambda _: httpx.post(f"{s.url}/report", json=body, timeout=300), range(4))
            )
        statuses = sorted(r.status_code for r in answers)
        assert 200 in statuses and 503 in statuses, statuses
