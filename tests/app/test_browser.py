"""The user's path in a real browser: Debian Chromium driven by Playwright against `streamlit run`.

Skipped with a reason when Chromium is not installed, unless ``GMX_REQUIRE_BROWSER=1`` (CI), where a
missing browser fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.browser

if CHROMIUM is None:
    if os.environ.get("GMX_REQUIRE_BROWSER") == "1":
        raise RuntimeError("GMX_REQUIRE_BROWSER=1 but no chromium is installed")
    pytest.skip(
        "Debian chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on a free loopback port; returns the process and its URL."""
    port = _free_port()
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.port", str(port),
         "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {proc.stdout.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not become healthy within 90 s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture()
def browser_page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page
        finally:
            browser.close()


def test_upload_a_photo_and_see_the_ranking(tiny_setup, browser_page, tmp_path):
    proc, url = start_app({"GMX_CONFIG": str(tiny_setup.config_path)})
    try:
        page = browser_page
        page.goto(f"{url}/Diagnose", wait_until="networkidle")
        page.get_by_text("Upload a frontal face photo").first.wait_for(timeout=60_000)
        photo = tmp_path / "patient.jpg"
        photo.write_bytes(tiny_setup.photo_jpeg)
        page.locator("input[type=file]").set_input_files(str(photo))
        page.get_by_text("Top 10 syndromes").wait_for(timeout=90_000)
        page.get_by_text("Aligned (112×112)").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / "diagnose.png"
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text("body")
        assert "Traceback" not in body and "Error" not in body.split("Top 10 syndromes")[0][-200:]
        # the ranked table is rendered by a canvas grid; its download proves the rows exist
        assert page.get_by_text("Download result").count() == 1
    finally:
        stop_app(proc)


def test_demo_out_of_the_box_pick_a_demo_face(browser_page, tmp_path):
    """No configuration at all: the embedded demo model and gallery answer a demo face correctly."""
    env = {k: "" for k in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY")}
    proc, url = start_app(env)
    try:
        page = browser_page
        page.goto(f"{url}/Diagnose", wait_until="networkidle")
        page.get_by_text("Demo faces").first.click()
        # syndrome C = long philtrum + thin upper lip vermilion; a held-out test patient
        page.get_by_role("button", name="syndrome C 1209").click()
        page.get_by_text("Top 10 syndromes").wait_for(timeout=90_000)
        page.wait_for_timeout(1500)
        shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text("body")
        assert "Synthetic demo" in body and "not for clinical use" in body
        # the grid is a canvas: read the JSON export instead of pixels
        with page.expect_download() as dl:
            page.get_by_text("Download result").click()
        result = json.loads(Path(dl.value.path()).read_text())
        names = [s["syndrome_name"] for s in result["suggested_syndromes_list"][:3]]
        assert any(n.startswith("Synthetic syndrome C ") for n in names), names
    finally:
        stop_app(proc)


#: Select boxes whose shown value is cut (its text is wider than the box): ``label: value``.
_CUT_SELECTS = """
() => [...document.querySelectorAll('[data-testid="stSelectbox"] input[role="combobox"]')]
  .filter(i => i.value && i.scrollWidth > i.clientWidth + 1)
  .map(i => `${i.getAttribute('aria-label')}: ${i.value}`)
"""


def test_syndromes_page_at_1440_px_names_methods_and_cuts_no_select_box(tmp_path):
    """The demo's Syndromes page in a 1440 px window: the longest syndrome name fits its select
    box, tiles carry display names and a legend, the causal region is outlined."""
    from playwright.sync_api import sync_playwright

    env = {k: "" for k in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY")}
    proc, url = start_app(env)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{url}/Syndromes", wait_until="networkidle")
            page.get_by_text("Composite face").first.wait_for(timeout=120_000)
            # the longest name of the demo: syndrome M
            page.locator('[data-testid="stSelectbox"]').filter(has_text="Syndrome").first.click()
            page.get_by_role("option", name="SYN:0013", exact=False).click()
            page.get_by_role("heading", name="SYN:0013").wait_for(timeout=60_000)
            page.get_by_text("Compare with a second syndrome").click()
            page.get_by_text("Second syndrome").wait_for(timeout=60_000)
            page.wait_for_timeout(2000)
            shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / "syndromes_1440.png"
            page.screenshot(path=str(shot), full_page=True)
            body = page.inner_text("body")
            cut = page.evaluate(_CUT_SELECTS)
            browser.close()
        assert "Traceback" not in body
        assert not cut, cut
        assert "Grad-CAM (signed)" in body and "gradcam_signed" not in body
        assert "Cyan outline: the known causal region" in body
        assert "Hypertelorism" in body or "Short palpebral fissure" in body
    finally:
        stop_app(proc)
