"""The app on a shared server (AppTest): sign-in gate, set names only, refusal, audit log."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.audit import AuditLog
from gmx.config import GmxConfig
from gmx.pipeline import Diagnoser
from tests.shared.helpers import PASSWORD, password_signin, write_shared_config
from ui import auth, state

TIMEOUT = 120
ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
DIAGNOSE = str(ROOT / "pages" / "1_Diagnose.py")


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture()
def shared_env(tiny_setup, tmp_path, monkeypatch):
    """Shared mode on (``[shared] enabled``), alice's password, the tiny models as two sets."""
    files = write_shared_config(
        tmp_path,
        signin=password_signin(),
        models=tiny_setup.model_path,
        gallery=tiny_setup.gallery_path,
    )
    monkeypatch.setenv("GMX_CONFIG", str(files.config))
    return files


@pytest.fixture()
def opened(monkeypatch) -> list[GmxConfig]:
    """Every configuration the app asks the library to load (Diagnoser.from_config)."""
    calls: list[GmxConfig] = []
    real = Diagnoser.from_config.__func__

    def recording(cls, config, **kwargs):
        calls.append(config)
        return real(cls, config, **kwargs)

    monkeypatch.setattr(Diagnoser, "from_config", classmethod(recording))
    return calls


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def test_every_page_asks_to_sign_in_first(shared_env):
    for script in (HOME, DIAGNOSE, str(ROOT / "pages" / "2_Explain.py")):
        at = AppTest.from_file(script, default_timeout=TIMEOUT).run()
        _no_exceptions(at)
        assert [t.value for t in at.title] == ["Sign in"]
        assert [t.label for t in at.text_input] == ["User name", "Password"]
        assert not at.selectbox and not at.text_area and not at.dataframe
        assert not at.subheader  # nothing of the page itself


def test_wrong_password_is_refused_right_one_signs_in_and_out(shared_env):
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    _sign_in(at, "alice", "wrong")
    _no_exceptions(at)
    assert [e.value for e in at.error] == [auth.WRONG]
    assert [t.value for t in at.title] == ["Sign in"] and state.USER not in at.session_state
    _sign_in(at, "mallory", PASSWORD)
    assert [e.value for e in at.error] == [auth.WRONG]
    _sign_in(at, "alice", PASSWORD)
    _no_exceptions(at)
    assert at.session_state[state.USER] == "alice"
    assert at.title[0].value.startswith("gmx")
    assert any("Signed in as **alice**" in c.value for c in at.sidebar.caption)
    at.sidebar.button[0].click().run()  # Sign out
    assert [t.value for t in at.title] == ["Sign in"] and state.USER not in at.session_state


def test_settings_offer_only_the_listed_set_names(shared_env):
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.session_state[state.USER] = "alice"
    at.run()
    _no_exceptions(at)
    (choice,) = at.selectbox
    assert choice.label == "Model set" and choice.options == ["tiny", "tiny, no flip"]
    assert not at.text_area and not at.text_input  # no path can be typed
    text = " ".join(m.value for m in at.markdown)
    assert "**Model set:** tiny" in text and "`tiny.pt`" in text
    assert str(shared_env.folder) not in text and "tiny_gmx" not in text  # no server paths


def test_switching_sets_loads_the_named_set_and_keeps_the_old_one_on_failure(shared_env):
    from ui import settings

    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.session_state[state.USER] = "alice"
    at.run()
    listed = at.session_state[state.CONFIG]
    # "tiny, no flip": the tiny gallery was embedded with flip, so loading refuses it
    at.selectbox[0].select("tiny, no flip")
    at.button(key="FormSubmitter:settings-Load and apply").click().run()
    _no_exceptions(at)
    assert "Not applied" in at.session_state[settings.ERROR]
    assert at.session_state[state.CONFIG] == listed
    # a third set with usable files: applied, and the session uses it
    with shared_env.config.open("a") as f:
        f.write(f'[model_sets.again]\nmodels = ["{listed.model_paths[0]}"]\n')
        f.write(f'gallery = "{listed.gallery_path}"\n')
    at.run()
    at.selectbox[0].select("again")
    at.button(key="FormSubmitter:settings-Load and apply").click().run()
    _no_exceptions(at)
    assert "now active" in at.session_state[settings.NOTICE]
    assert at.session_state[state.CONFIG].source == "model set “again”"
    assert any("**Model set:** again" in m.value for m in at.markdown)


def test_shared_mode_without_sign_in_refuses_to_start(tiny_setup, tmp_path, monkeypatch):
    files = write_shared_config(tmp_path, signin=None, models=tiny_setup.model_path)
    monkeypatch.setenv("GMX_CONFIG", str(files.config))
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    (error,) = at.error
    assert "This shared gmx server is not started" in error.value
    assert "needs a sign-in, and none is configured" in error.value
    assert not at.text_input and not at.title and not at.selectbox


def test_listening_beyond_localhost_implies_shared_mode(tiny_setup, tmp_path, monkeypatch):
    from ui import resources

    files = write_shared_config(tmp_path, signin=None, enabled=False, models=tiny_setup.model_path)
    monkeypatch.setenv("GMX_CONFIG", str(files.config))
    monkeypatch.setattr(resources, "server_address", lambda: "localhost")
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    assert not at.error and at.text_area  # a private app: the path fields
    monkeypatch.setattr(resources, "server_address", lambda: "0.0.0.0")
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert "listens beyond this machine (server.address = 0.0.0.0)" in at.error[0].value
    assert not at.text_area


def test_oidc_without_identity_provider_refuses_to_start(shared_env, monkeypatch):
    text = shared_env.config.read_text()
    start, end = text.index("[signin]"), text.index("[model_sets.tiny]")
    shared_env.config.write_text(text[:start] + '[signin]\nmethod = "oidc"\n' + text[end:])
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    assert "secrets.toml" in at.error[0].value and not at.button


def test_repeated_wrong_passwords_lock_the_name(shared_env):
    from gmx.passwords import MAX_FAILURES

    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    for _ in range(MAX_FAILURES):
        _sign_in(at, "eve", "guess")
        assert [e.value for e in at.error] == [auth.WRONG]
    _sign_in(at, "eve", "guess")
    assert "Too many wrong passwords for this name" in at.error[0].value
    _sign_in(at, "alice", PASSWORD)  # other names are not affected
    assert at.session_state[state.USER] == "alice"


class _FakeUser(dict):
    """Stands in for ``st.user`` (an identity provider is not reachable in tests)."""

    @property
    def is_logged_in(self) -> bool:
        return bool(self)


@pytest.fixture()
def oidc_env(shared_env, monkeypatch):
    """``[signin] method = "oidc"`` for uni-bonn.de, the provider's checks passed."""
    text = shared_env.config.read_text()
    start, end = text.index("[signin]"), text.index("[model_sets.tiny]")
    signin = '[signin]\nmethod = "oidc"\nallowed_domains = ["uni-bonn.de"]\n'
    shared_env.config.write_text(text[:start] + signin + text[end:])
    monkeypatch.setattr(auth, "problems", lambda shared: [])
    return shared_env


def test_oidc_sign_in_button_allowed_domains_and_audit_user(oidc_env, tiny_setup, monkeypatch):
    import streamlit

    monkeypatch.setattr(streamlit, "user", _FakeUser())
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    assert [b.label for b in at.button] == ["Sign in with your institution's account"]
    assert not at.text_input  # no password form

    monkeypatch.setattr(streamlit, "user", _FakeUser(email="mallory@evil.org"))
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT).run()
    assert "may not use this server" in at.error[0].value and not at.selectbox

    monkeypatch.setattr(streamlit, "user", _FakeUser(email="Dr.Alice@uni-bonn.de", name="Alice"))
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert at.dataframe
    (row,) = AuditLog(oidc_env.audit).entries()
    assert row.user == "Dr.Alice@uni-bonn.de"


def _unlisted(tiny_setup, tmp_path) -> GmxConfig:
    """Copies of the tiny files under other names: usable, but not listed."""
    model = shutil.copy(tiny_setup.model_path, tmp_path / "unlisted.pt")
    gallery = shutil.copy(tiny_setup.gallery_path, tmp_path / "unlisted.sqlite")
    return GmxConfig(model_paths=(Path(model),), gallery_path=Path(gallery), device="cpu")


def test_crafted_session_state_cannot_open_an_unlisted_path(
    shared_env, tiny_setup, tmp_path, opened
):
    unlisted = _unlisted(tiny_setup, tmp_path)
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.USER] = "alice"
    at.session_state[state.CONFIG] = unlisted
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert all(unlisted.gallery_path != c.gallery_path for c in opened)
    assert any("no longer offered" in i.value for i in at.info)
    assert at.dataframe  # ranked with the first listed set instead


def test_the_loading_code_refuses_an_unlisted_configuration(
    shared_env, tiny_setup, tmp_path, opened, monkeypatch
):
    """Even when a configuration gets past the session checks, loading refuses it before a file
    is opened (the check is in ui.resources.load_diagnoser, not in a widget)."""
    from ui import resources

    unlisted = _unlisted(tiny_setup, tmp_path)
    monkeypatch.setattr(resources, "active_config", lambda: unlisted)
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.USER] = "alice"
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert opened == []
    assert any("only the model sets the administrator listed" in e.value for e in at.error)
    assert not at.dataframe


def test_an_analysis_writes_one_audit_row_with_the_photo_hash(shared_env, tiny_setup):
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.USER] = "alice"
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert at.dataframe
    at.run()  # a rerun is not a new analysis
    (row,) = AuditLog(shared_env.audit).entries()
    assert row.user == "alice" and row.model_set == "tiny" and row.face_index == 0
    assert row.photo_sha256 == hashlib.sha256(tiny_setup.photo_jpeg).hexdigest()
    assert row.gallery == "tiny gallery" and row.gallery_file == "tiny.sqlite"
    assert len(row.model_fingerprints) == 1 and len(row.ensemble_fingerprint) == 64
    with sqlite3.connect(shared_env.audit) as db:
        blobs = db.execute("SELECT count(*) FROM analyses WHERE typeof(user) = 'blob'").fetchone()
    assert blobs == (0,)
    stored = b"".join(p.read_bytes() for p in shared_env.audit.parent.iterdir())
    assert tiny_setup.photo_jpeg[100:164] not in stored


def test_an_analysis_that_cannot_be_audited_is_not_shown(shared_env, tiny_setup, monkeypatch):
    from gmx.audit import AuditError

    def broken(self, entry):
        raise AuditError("audit log x: disk I/O error.")

    monkeypatch.setattr(AuditLog, "record", broken)
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.USER] = "alice"
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert any("could not be recorded in the audit log" in e.value for e in at.error)
    assert not at.dataframe


def test_private_app_writes_no_audit_log_and_asks_no_sign_in(tiny_env):
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.PHOTO_BYTES] = tiny_env.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert at.dataframe and not any(t.value == "Sign in" for t in at.title)
    assert not any(
        p.suffix == ".sqlite" and "audit" in p.name for p in tiny_env.config_path.parent.iterdir()
    )
