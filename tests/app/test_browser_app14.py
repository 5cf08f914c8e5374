"""Live OpenID Connect sign-in in a real browser: Streamlit's ``st.login`` against a real local
identity provider (``oidc-provider-mock``: authorization-code flow, discovery, JWKS, ID tokens).

The provider runs in this process on a free port; the app (``streamlit run app.py``, harness of
``test_browser.py``) gets it through ``.streamlit/secrets.toml`` (a temporary file named by
``STREAMLIT_SECRETS_FILES``) and ``[signin] method = "oidc"`` in the gmx configuration. Skipped like
the other browser tests without Chromium, and with a reason without Authlib or the provider.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pytest

from gmx.audit import AuditLog
from tests.app.test_browser import _free_port, browser_page, start_app, stop_app
from tests.shared.helpers import write_shared_config

pytestmark = pytest.mark.browser
__all__ = ["browser_page"]  # the fixture, imported for the tests below

pytest.importorskip("authlib", reason="st.login needs Authlib (pip install 'gmx[oidc]')")
oidc_provider_mock = pytest.importorskip("oidc_provider_mock")

SIGN_IN = "Sign in with your institution's account"
ALICE = "alice@uni-bonn.de"
MALLORY = "mallory@evil.org"
#: The app's first run imports torch, MediaPipe and the models: over a minute seen on the loaded
#: 2-core box (the page showed only the navigation until then).
FIRST_RUN_MS = 180_000


def _secrets(path: Path, *, provider_port: int) -> None:
    """Streamlit's ``[auth]``: the app's callback (``{port}``: Streamlit fills in its own) and the
    provider's discovery document; the provider accepts any client id and secret."""
    path.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(48)}"\n'
        'client_id = "gmx-test"\n'
        'client_secret = "gmx-test-secret"\n'
        f'server_metadata_url = "http://localhost:{provider_port}/.well-known/openid-configuration"\n'
    )


def _sign_in(page, url: str, sub: str) -> None:
    """Open the app, press its sign-in button, and authorize as ``sub`` on the provider's page
    (the provider gives a new user the e-mail claim ``sub``)."""
    page.goto(url, wait_until="networkidle")
    button = page.get_by_role("button", name=SIGN_IN)
    button.wait_for(timeout=FIRST_RUN_MS)
    button.click()
    page.get_by_text("Authorize Client").wait_for(timeout=60_000)
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()


def test_oidc_sign_in_through_a_live_identity_provider(tiny_setup, browser_page, tmp_path):
    (tmp_path / "server").mkdir()
    signin = '[signin]\nmethod = "oidc"\nallowed_domains = ["uni-bonn.de"]\n'
    files = write_shared_config(
        tmp_path / "server",
        signin=signin,
        models=tiny_setup.model_path,
        gallery=tiny_setup.gallery_path,
    )
    shots = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path))
    with oidc_provider_mock.run_server_in_thread(port=_free_port()) as provider:
        secrets_file = tmp_path / "secrets.toml"
        _secrets(secrets_file, provider_port=provider.server_port)
        env = {"GMX_CONFIG": str(files.config), "STREAMLIT_SECRETS_FILES": str(secrets_file)}
        proc, url = start_app(env)
        try:
            page = browser_page
            # a user of another domain is signed in by the provider, and refused by gmx
            _sign_in(page, url, MALLORY)
            page.get_by_text("may not use this server").wait_for(timeout=60_000)
            assert MALLORY in page.inner_text("body")
            assert page.get_by_text("Active models and gallery").count() == 0
            page.screenshot(path=str(shots / "oidc-refused.png"))

            # a fresh browser (no identity cookie): alice of the allowed domain
            context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            _sign_in(page, url, ALICE)
            page.get_by_text("Active models and gallery").wait_for(timeout=60_000)
            page.get_by_text(f"Signed in as {ALICE}").wait_for(timeout=10_000)
            page.screenshot(path=str(shots / "oidc-home.png"))

            # an analysis: the audit row carries the identity provider's user
            page.get_by_role("link", name="Open Diagnose").click()
            page.get_by_text("Upload a frontal face photo").first.wait_for(timeout=180_000)
            photo = tmp_path / "patient.jpg"
            photo.write_bytes(tiny_setup.photo_jpeg)
            page.locator("input[type=file]").set_input_files(str(photo))
            page.get_by_text("Top 10 syndromes").wait_for(timeout=90_000)
            (row,) = AuditLog(files.audit).entries()
            assert row.user == ALICE and row.model_set == "tiny"
            assert row.photo_sha256 == hashlib.sha256(tiny_setup.photo_jpeg).hexdigest()
        finally:
            stop_app(proc)
