"""The app's shell: navigation, the Home settings panel, the demo banner, Material icons (AppTest)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from streamlit.material_icon_names import ALL_MATERIAL_ICONS
from streamlit.testing.v1 import AppTest

from gmx.config import GmxConfig, load_config
from ui import common, resources, state

TIMEOUT = 180
ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
#: The app's pages, Home first (``app.py`` runs them through ``st.navigation``).
SCRIPTS = [
    "pages/0_Home.py",
    "pages/1_Diagnose.py",
    "pages/2_Explain.py",
    "pages/3_Similarity.py",
    "pages/4_Syndromes.py",
    "pages/5_Use_case.py",
    "pages/6_Scorecard.py",
    "pages/7_Study.py",
    "pages/8_Study_analysis.py",
]
UI_FILES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# --- navigation -------------------------------------------------------------------------------
def test_pages_have_names_icons_and_files():
    assert [p.title for p in common.PAGES] == [
        "Home",
        "Diagnose",
        "Explain",
        "Similarity",
        "Syndromes",
        "Use case",
        "Scorecard",
        "Study",
        "Study analysis",
    ]
    assert [p.script for p in common.PAGES] == SCRIPTS
    for page in common.PAGES:
        assert (ROOT / page.script).is_file(), page.script
        assert re.fullmatch(r":material/[a-z0-9_]+:", page.icon), page.icon
        assert page.icon.split("/")[1].strip(":") in ALL_MATERIAL_ICONS, page.icon
    assert common.HOME is common.PAGES[0]


def test_app_py_opens_home_and_reaches_every_page(tiny_env):
    """``streamlit run app.py`` is the entry point: it opens Home, and every page runs through it."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    assert at.title[0].value.startswith("gmx")
    assert any(s.value == "Active models and gallery" for s in at.subheader)
    for page in common.PAGES[1:]:
        at.switch_page(page.script).run()
        _no_exceptions(at)
        assert at.title[0].value.startswith(page.title), (page.script, at.title[0].value)


# --- the synthetic-demo banner ----------------------------------------------------------------
def _demo_banners(block) -> list[str]:
    return [w.value for w in block.warning if "Synthetic demo" in w.value]


@pytest.mark.parametrize("page", SCRIPTS, ids=lambda s: Path(s).stem)
def test_every_page_shows_the_demo_banner_in_the_main_area(page, monkeypatch):
    """On a phone the sidebar is closed: the warning must be in the main area, on every page."""
    for name in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY"):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = GmxConfig()
    at.run()
    if page != SCRIPTS[0]:
        at.switch_page(page).run()
    _no_exceptions(at)
    banners = _demo_banners(at.main)
    assert len(banners) == 1 and "not for clinical use" in banners[0]
    assert not _demo_banners(at.sidebar)


@pytest.mark.parametrize("page", SCRIPTS, ids=lambda s: Path(s).stem)
def test_no_demo_banner_with_the_users_files(page, tiny_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    if page != SCRIPTS[0]:
        at.switch_page(page).run()
    _no_exceptions(at)
    assert not _demo_banners(at.main) and not _demo_banners(at.sidebar)
    assert any("Using your files" in i.value for i in at.sidebar.info)


# --- the settings panel (issue 10 item 9) ---------------------------------------------------------
def _apply_button(at: AppTest):
    return next(b for b in at.button if "apply" in b.label.lower())


def _submit(at: AppTest, models: str, gallery: str) -> AppTest:
    at.text_area[0].set_value(models)
    at.text_input[0].set_value(gallery)
    _apply_button(at).click()
    return at.run()


def _errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


@pytest.mark.parametrize("field", ["models", "gallery"])
def test_settings_refuse_a_text_file_and_keep_the_error(field, tiny_env, tmp_path, plain_message):
    """A text file as weights or gallery: nothing is applied, the error shows at once and stays."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model, not a gallery\n", encoding="utf-8")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    before = at.session_state[state.CONFIG]
    at.session_state[state.PHOTO_BYTES] = tiny_env.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "patient.jpg"
    models = str(notes) if field == "models" else str(tiny_env.model_path)
    gallery = str(notes) if field == "gallery" else str(tiny_env.gallery_path)
    _submit(at, models, gallery)
    _no_exceptions(at)
    shown = _errors(at)
    assert "notes.txt" in shown and "Not applied" in shown, shown
    plain_message(shown)
    assert not at.success
    assert at.session_state[state.CONFIG] == before  # the previous configuration stays
    assert at.session_state[state.PHOTO_BYTES] == tiny_env.photo_jpeg  # nothing forgotten
    at.run()  # any later rerun (another widget, a page change and back) keeps the error
    _no_exceptions(at)
    assert _errors(at) == shown
    at.switch_page("pages/1_Diagnose.py").run()
    at.switch_page(SCRIPTS[0]).run()
    assert _errors(at) == shown


def test_settings_apply_a_valid_configuration(tiny_setup, monkeypatch):
    """From the demo to the user's files: loaded (and kept loaded) with progress messages before it
    becomes active; the progress box is gone afterwards."""
    for name in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY"):
        monkeypatch.delenv(name, raising=False)
    from gmx.pipeline import Diagnoser

    said: list[str] = []
    original = Diagnoser.from_config.__func__

    def from_config(cls, config, *, progress=None):
        def say(message: str) -> None:
            said.append(message)
            progress(message)

        assert progress is not None, "loading without progress"
        return original(cls, config, progress=say)

    monkeypatch.setattr(Diagnoser, "from_config", classmethod(from_config))
    store = resources._LruStore(max_items=resources.DIAGNOSERS_KEPT)  # nothing loaded yet
    monkeypatch.setattr(resources, "_diagnosers", lambda: store)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = GmxConfig()
    at.run()
    device = next(s for s in at.selectbox if s.label == "Device")
    device.set_value("cpu")
    _submit(at, str(tiny_setup.model_path), str(tiny_setup.gallery_path))
    _no_exceptions(at)
    assert not at.error, _errors(at)
    cfg = at.session_state[state.CONFIG]
    assert cfg.model_paths == (tiny_setup.model_path,)
    assert cfg.gallery_path == tiny_setup.gallery_path and cfg.device == "cpu"
    assert cfg.source == "settings panel" and not cfg.is_demo
    assert any("now active" in s.value for s in at.success)
    assert said and said[0] == "Loading model tiny.pt", said
    assert not at.main.expander or all("Loading" not in e.label for e in at.main.expander)
    assert not _demo_banners(at.main)
    # loaded once, before applying: the pages reuse it
    assert store.get(resources.config_key(cfg)) is not None


def test_settings_name_missing_files(tiny_env, tmp_path):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    before = at.session_state[state.CONFIG]
    _submit(at, str(tmp_path / "absent.pt"), str(tiny_env.gallery_path))
    _no_exceptions(at)
    assert "absent.pt" in _errors(at) and at.session_state[state.CONFIG] == before


# --- icons ------------------------------------------------------------------------------------
#: Pictographs, symbols and dingbats, the emoji variation selector and joiner: drawn from an emoji
#: font, an empty box where none is installed.
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0f\u200d]")


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_emoji_in_the_app(path):
    text = path.read_text(encoding="utf-8")
    found = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if EMOJI.search(line)
    ]
    assert not found, f"emoji in {path.name} (use :material/...: icons): {found}"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_icon_argument_is_a_material_icon(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg in ("icon", "page_icon") and isinstance(kw.value, ast.Constant):
                icon = kw.value.value
                assert isinstance(icon, str) and re.fullmatch(r":material/[a-z0-9_]+:", icon), (
                    f"{path.name}:{node.lineno}: icon {icon!r} is not a Material icon"
                )
                assert icon.split("/")[1].strip(":") in ALL_MATERIAL_ICONS, icon
