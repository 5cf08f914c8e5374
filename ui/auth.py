"""Sign-in for the app on a shared server, and the audit of analyses (``docs/shared.md``).

:func:`gate` runs first on every page in shared mode (``ui.common.page_setup``): a server that may not
start (no sign-in configured, audit log unusable, identity provider missing) shows why and nothing else;
otherwise it returns the signed-in user or shows the sign-in and stops the page. Built-in passwords are
checked against the configuration's hashes (:mod:`gmx.passwords`); ``oidc`` is Streamlit's
``st.login`` with the identity provider of ``.streamlit/secrets.toml``.

:func:`record_analysis` writes one audit row per photo, face and model set a session analyses; it is
called by ``ui.photo.diagnosis``, the one place every page gets its diagnosis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import streamlit as st

from gmx.audit import AuditError, analysis_entry
from gmx.config import GmxConfig
from gmx.pipeline import Diagnosis
from gmx.shared import SharedConfig, SignIn, oidc_problems, startup_problems
from ui import resources, state

log = logging.getLogger("gmx")

ICON_USER = ":material/account_circle:"
SIGN_IN_HELP = (
    "This gmx server is shared with colleagues: sign in with the name and password your "
    "administrator gave you. Every analysis is recorded (who, when, which models; the photo's "
    "fingerprint, never the photo)."
)
OIDC_HELP = (
    "This gmx server is shared with colleagues: sign in with your institution's account. Every "
    "analysis is recorded (who, when, which models; the photo's fingerprint, never the photo)."
)
WRONG = "Wrong user name or password."


@dataclass(frozen=True)
class SignInRequest:
    """What the sign-in form asks for."""

    name: str
    password: str


def problems(shared: SharedConfig) -> list[str]:
    """Why this shared server must not serve pages (:func:`gmx.shared.startup_problems`, plus the
    identity provider of ``oidc``, which lives in Streamlit's secrets)."""
    found = startup_problems(shared, resources.server_address())
    signin = shared.signin
    if found or signin is None or signin.method != "oidc":
        return found
    try:
        from streamlit.auth_util import is_authlib_installed
    except ImportError:  # Streamlit before 1.42 has no st.login
        found.append('[signin] method = "oidc" needs Streamlit >= 1.42 (st.login).')
        return found
    try:
        auth = st.secrets.get("auth")
    except FileNotFoundError:  # no secrets.toml at all
        auth = None
    found.extend(oidc_problems(signin, auth, authlib=is_authlib_installed()))
    return found


def gate(shared: SharedConfig) -> str:
    """The signed-in user; otherwise the sign-in (or why the server cannot start), and stop."""
    found = problems(shared)
    if found:
        log.error("shared gmx server refused to start: %s", " ".join(found))
        st.error(
            "**This shared gmx server is not started.** " + " ".join(found),
            icon=":material/block:",
        )
        st.stop()
    signin: SignIn = shared.signin  # type: ignore[assignment]  # problems() checked it
    if signin.method == "oidc":
        return _oidc_user(signin)
    return _password_user(signin)


def sign_in_controls() -> SignInRequest | None:
    """The sign-in form; the request when *Sign in* is pressed."""
    with st.form("gmx.sign_in"):
        name = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        if not st.form_submit_button("Sign in", type="primary", icon=":material/login:"):
            return None
    return SignInRequest(name.strip(), password)


def _password_user(signin: SignIn) -> str:
    user = state.get(state.USER)
    if user is not None and user in signin.users:  # a user removed from the file is signed out
        return str(user)
    st.title("Sign in")
    st.caption(SIGN_IN_HELP)
    request = sign_in_controls()
    if request is not None:
        throttle = resources.sign_in_throttle()
        wait = throttle.wait_s(request.name)
        if wait > 0:
            st.error(f"Too many wrong passwords for this name: try again in {wait:.0f} s.")
        elif signin.verify(request.name, request.password):
            throttle.succeeded(request.name)
            st.session_state[state.USER] = request.name
            log.info("signed in: %s", request.name)
            st.rerun()
        else:
            throttle.failed(request.name)
            st.error(WRONG, icon=":material/error:")
    st.stop()
    raise AssertionError("unreachable: st.stop() raises")


def _oidc_user(signin: SignIn) -> str:
    if not st.user.is_logged_in:
        st.title("Sign in")
        st.caption(OIDC_HELP)
        st.button(
            "Sign in with your institution's account",
            type="primary",
            icon=":material/login:",
            on_click=st.login,
            args=(signin.provider,) if signin.provider else (),
        )
        st.stop()
    email = st.user.get("email")
    if not signin.allows_email(str(email) if email else None):
        st.error(f"**{email or 'This account'}** may not use this server; ask its administrator.")
        st.button("Sign out", on_click=st.logout, icon=":material/logout:")
        st.stop()
    user = str(email or st.user.get("name") or st.user.get("sub"))
    st.session_state[state.USER] = user
    return user


def _sign_out(oidc: bool) -> None:
    data = state.get(state.PHOTO_BYTES)
    if data is not None:
        resources.forget_photo(resources.photo_sha256(data))
    st.session_state.clear()
    if oidc:
        st.logout()


def account(user: str, shared: SharedConfig) -> None:
    """Who is signed in, and *Sign out* (forgets this session's photo and settings)."""
    st.caption(f"Signed in as **{user}**")
    oidc = shared.signin is not None and shared.signin.method == "oidc"
    st.button("Sign out", on_click=_sign_out, args=(oidc,), icon=":material/logout:")


def record_analysis(cfg: GmxConfig, photo_sha256: str, diagnosis: Diagnosis) -> None:
    """In shared mode, write the analysis of this photo's face with this model set to the audit
    log, once per session; an analysis that cannot be recorded is not shown (clear message)."""
    shared = resources.shared_mode()
    if shared is None:
        return
    key = state.AUDITED_PREFIX + photo_sha256
    done: set = set(state.get(key, set()))
    mark = (resources.config_key(cfg), diagnosis.face_index)
    if mark in done:
        return
    user = state.get(state.USER)
    if not user:  # gate() runs first on every page; never analyse anonymously
        st.error("Sign in first.")
        st.stop()
    try:
        model_set = shared.check_listed(cfg).name
        entry = analysis_entry(
            resources.diagnoser(cfg),
            user=str(user),
            photo_sha256=photo_sha256,
            face_index=diagnosis.face_index,
            model_set=model_set,
            gallery_file=cfg.gallery_path.name,
        )
        resources.audit_log(shared.audit_log).record(entry)  # type: ignore[arg-type]
    except AuditError as exc:
        log.error("audit log: %s", exc)
        st.error(
            f"The analysis could not be recorded in the audit log, so it is not shown: {exc} "
            "Tell the administrator."
        )
        st.stop()
    done.add(mark)
    st.session_state[key] = done
