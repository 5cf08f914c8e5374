from __future__ import annotations

from pathlib import Path

import pytest

from gmx.config import GmxConfig, load_config
from gmx.errors import ConfigError
from gmx.shared import (
    NotListedError,
    SharedConfig,
    SignIn,
    listens_beyond_localhost,
    load_shared_config,
    startup_problems,
)
from tests.shared.helpers import PASSWORD, password_signin, write_shared_config


@pytest.mark.parametrize(
    ("address", "beyond"),
    [
        ("localhost", False),
        ("LOCALHOST", False),
        ("127.0.0.1", False),
        ("127.0.1.1", False),
        ("::1", False),
        ("[::1]", False),
        (None, True),  # Streamlit's default: every interface
        ("", True),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.20", True),
        ("gmx.example.org", True),
    ],
)
def test_listens_beyond_localhost(address, beyond):
    assert listens_beyond_localhost(address) is beyond


def test_shared_mode_is_on_when_configured_or_beyond_localhost():
    assert not SharedConfig().is_on("localhost")
    assert SharedConfig().is_on("0.0.0.0")
    assert SharedConfig(enabled=True).is_on("127.0.0.1")


def test_sets_sign_in_and_audit_log_are_read(tmp_path: Path):
    files = write_shared_config(tmp_path, signin=password_signin())
    shared = load_shared_config({"GMX_CONFIG": str(files.config)})
    assert shared.enabled and shared.names == ("tiny", "tiny, no flip")
    tiny, no_flip = shared.sets
    assert tiny.config.model_paths == (tmp_path / "a.pt",)
    assert tiny.config.gallery_path == tmp_path / "g.sqlite"
    assert tiny.config.device == "cpu" and tiny.config.flip and not no_flip.config.flip
    assert shared.default is tiny
    assert shared.audit_log == files.audit
    assert shared.signin is not None and shared.signin.method == "password"
    assert shared.signin.verify("alice", PASSWORD)
    assert not shared.signin.verify("alice", "wrong") and not shared.signin.verify("bob", PASSWORD)


def test_without_listed_sets_the_configuration_is_the_one_set(tmp_path: Path):
    (tmp_path / "gmx.toml").write_text('[shared]\nenabled = true\n[gallery]\npath = "g.sqlite"\n')
    env = {"GMX_CONFIG": str(tmp_path / "gmx.toml")}
    shared = load_shared_config(env)
    assert shared.names == ("default",) and shared.default.config == load_config(env)
    assert shared.audit_log == tmp_path / "gmx-audit.sqlite"
    assert load_shared_config({}).sets[0].config.is_demo


def test_check_listed_refuses_anything_else(tmp_path: Path):
    files = write_shared_config(tmp_path, signin=password_signin())
    shared = load_shared_config({"GMX_CONFIG": str(files.config)})
    assert shared.check_listed(shared.sets[1].config).name == "tiny, no flip"
    listed = shared.default.config
    for other in (
        GmxConfig(),  # the embedded demo is not listed
        listed.with_overrides(gallery_path=tmp_path / "other.sqlite"),
        listed.with_overrides(model_paths=[tmp_path / "a.pt", tmp_path / "b.pt"]),
        listed.with_overrides(source="settings panel"),
    ):
        with pytest.raises(NotListedError, match="only the model sets the administrator listed"):
            shared.check_listed(other)
    with pytest.raises(NotListedError, match="no model set named 'x'"):
        shared.set_named("x")


def test_shared_mode_without_sign_in_refuses_to_start(tmp_path: Path):
    files = write_shared_config(tmp_path, signin=None)
    shared = load_shared_config({"GMX_CONFIG": str(files.config)})
    (problem,) = startup_problems(shared, "localhost")
    assert "needs a sign-in, and none is configured" in problem
    assert "[shared] enabled = true" in problem and "gmx hash-password" in problem
    # implied by the address alone
    files = write_shared_config(tmp_path, signin=None, enabled=False)
    shared = load_shared_config({"GMX_CONFIG": str(files.config)})
    assert startup_problems(shared, "localhost") == []
    (problem,) = startup_problems(shared, "0.0.0.0")
    assert "listens beyond this machine (server.address = 0.0.0.0)" in problem
    problems = startup_problems(SharedConfig(), None)  # and no file for the audit log
    assert "all interfaces" in problems[0] and "GMX_CONFIG" in problems[1]


def test_password_sign_in_without_users_refuses_to_start(tmp_path: Path):
    files = write_shared_config(tmp_path, signin='[signin]\nmethod = "password"\n')
    shared = load_shared_config({"GMX_CONFIG": str(files.config)})
    (problem,) = startup_problems(shared, "localhost")
    assert "lists no users" in problem


def test_startup_creates_the_audit_log_or_says_why_not(tmp_path: Path):
    files = write_shared_config(tmp_path, signin=password_signin())
    shared = load_shared_config({"GMX_CONFIG": str(files.config)})
    assert startup_problems(shared, "localhost") == []
    assert files.audit.is_file()
    (tmp_path / "blocked").write_text("a file where a folder should be")
    broken = SharedConfig(
        enabled=True, signin=shared.signin, audit_log=tmp_path / "blocked" / "log.sqlite"
    )
    (problem,) = startup_problems(broken, "localhost")
    assert "audit log" in problem and "blocked" in problem


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[signin]\nmethod = "ldap"\n', r'\[signin\] method must be "password" or "oidc"'),
        ('[signin.users]\nalice = "hunter2"\n', r"\[signin\] users must be a table of user names"),
        ("[model_sets.x]\nmodels = []\n", r"\[model_sets.x\] models must be a list"),
        ('[model_sets.x]\nmodels = ["a.pt"]\n', r"\[model_sets.x\] has no gallery"),
        ('[model_sets.x]\nmodels = ["a.pt"]\ngalery = "g"\n', r"galery is not a known key"),
        ("[model_sets]\nx = 3\n", r"\[model_sets.x\] must be a table"),
        ("[shared]\nenabled = 1\n", r"\[shared\] enabled must be true or false"),
        ('[signin]\nallowed_domains = "x.org"\n', r"allowed_domains must be a list"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text, match):
    (tmp_path / "gmx.toml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_shared_config({"GMX_CONFIG": str(tmp_path / "gmx.toml")})


def test_a_wrong_hash_is_not_repeated_in_the_message(tmp_path: Path):
    (tmp_path / "gmx.toml").write_text('[signin.users]\nalice = "my-secret-password"\n')
    with pytest.raises(ConfigError) as info:
        load_shared_config({"GMX_CONFIG": str(tmp_path / "gmx.toml")})
    assert "my-secret-password" not in str(info.value)
    assert "the entry of 'alice' is not such a hash" in str(info.value)


def test_oidc_allow_lists():
    anyone = SignIn("oidc")
    assert anyone.allows_email("x@y.org") and anyone.allows_email(None)
    listed = SignIn("oidc", allowed_domains=("uni-bonn.de",), allowed_emails=("Guest@x.org",))
    assert listed.allows_email("A.B@Uni-Bonn.de") and listed.allows_email("guest@x.org")
    assert not listed.allows_email("a@evil-uni-bonn.de") and not listed.allows_email("a@x.org")
    assert not listed.allows_email(None) and not listed.allows_email("no-at-sign")
