"""The argument helpers every ``gmx`` subcommand shares (:mod:`gmx._cli_args`): one implementation,
the same model options on every command that builds a Diagnoser, every flag still in ``--help``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

import gmx
from gmx import _cli_args
from gmx.cli import build_parser, main

PACKAGE = Path(gmx.__file__).resolve().parent

MODEL_FLAGS = ("--models", "--gallery", "--no-flip", "--no-grey")

#: Each command and the shared flags its ``--help`` lists (as before the helpers were shared).
HELP_FLAGS = {
    ("encode",): ("--models", "--no-flip", "--no-grey"),
    ("predict",): (*MODEL_FLAGS, "--min-distance", "--hpo"),
    ("evaluate",): MODEL_FLAGS,
    ("gallery", "build"): ("--models", "--no-flip", "--no-grey"),
    ("gallery", "import"): ("--models", "--no-flip", "--no-grey"),
    ("gallery", "info"): ("--models", "--no-flip", "--no-grey"),
    ("gallery", "calibrate"): ("--models", "--no-flip", "--no-grey"),
    ("report",): (*MODEL_FLAGS, "--min-distance", "--hpo", "--absent-hpo"),
    ("serve",): MODEL_FLAGS,
    ("scorecard",): ("--models", "--gallery"),
    ("scorecard", "run"): ("--models", "--gallery"),
    ("batch", "run"): ("--models", "--gallery"),
    ("batch", "summarize"): ("--models", "--gallery"),
}

#: The commands that build a :class:`~gmx.pipeline.Diagnoser` from their options (the gallery
#: calibration takes its gallery as a positional argument instead of ``--gallery``).
DIAGNOSER_COMMANDS = {
    ("predict",): MODEL_FLAGS,
    ("report",): MODEL_FLAGS,
    ("serve",): MODEL_FLAGS,
    ("gallery", "calibrate"): ("--models", "--no-flip", "--no-grey"),
}


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _signature(action: argparse.Action) -> tuple[object, ...]:
    """What a user sees of an option: its kind, dest, arity, type, default and help."""
    return (
        type(action),
        action.dest,
        action.nargs,
        action.type,
        action.default,
        action.required,
        action.help,
    )


@pytest.mark.parametrize("path", sorted(HELP_FLAGS), ids=" ".join)
def test_help_lists_the_shared_flags(path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*path, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for flag in HELP_FLAGS[path]:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"{flag} not in --help"


@pytest.mark.parametrize("path", sorted(DIAGNOSER_COMMANDS), ids=" ".join)
def test_commands_building_a_diagnoser_take_the_same_model_options(path):
    reference = argparse.ArgumentParser()
    _cli_args.add_model_args(reference)
    _cli_args.add_min_distance_arg(reference)
    expected = _options(reference)
    options = _options(_subparser(path))
    for flag in DIAGNOSER_COMMANDS[path]:
        assert flag in options, f"gmx {' '.join(path)} has no {flag}"
        if (path, flag) == (("gallery", "calibrate"), "--models"):  # its own help, same option
            assert _signature(options[flag])[:-1] == _signature(expected[flag])[:-1]
            continue
        assert _signature(options[flag]) == _signature(expected[flag]), flag
    if "--min-distance" in options:
        assert _signature(options["--min-distance"]) == _signature(expected["--min-distance"])


def test_min_distance_is_offered_where_matches_are_ranked_for_a_user():
    for path in (("predict",), ("report",)):
        assert "--min-distance" in _options(_subparser(path)), path


#: The option strings whose ``add_argument`` lives only in :mod:`gmx._cli_args`.
_SHARED_OPTIONS = re.compile(
    r"""add_argument\(\s*["'](--models|--no-flip|--no-grey|--min-distance|--hpo|--absent-hpo)["']"""
)
_RESTATED_HELPERS = re.compile(r"^def (_?configured|_?hpo_id|_?add_model_args)\(", re.MULTILINE)


def test_the_cli_helpers_have_one_implementation():
    """Restating the helpers in a ``gmx`` subcommand module (as gmx.report.cli and gmx.serve.cli once did, to
    avoid an import cycle with gmx.cli) fails here: import them from gmx._cli_args."""
    restated = []
    for path in sorted(PACKAGE.rglob("*cli.py")):  # the modules of the gmx subcommands
        text = path.read_text(encoding="utf-8")
        restated += [
            f"{path.relative_to(PACKAGE)}: {m.group(1)}" for m in _SHARED_OPTIONS.finditer(text)
        ]
        restated += [
            f"{path.relative_to(PACKAGE)}: def {m.group(1)}"
            for m in _RESTATED_HELPERS.finditer(text)
        ]
    assert restated == []


#: A progress bar or ``progress(done, total)`` callback restated in a subcommand module.
_RESTATED_PROGRESS = re.compile(
    r"\btqdm\(|^\s*def _?(progress|bar_callback|update)\(", re.MULTILINE
)


def test_the_progress_bars_have_one_implementation():
    """The commands' tqdm bars and the callback that moves them live in gmx._progress (gmx.cli,
    gmx.aggregate.cli, gmx.metrics.cli and gmx.metrics.pairs_cli once each restated them)."""
    restated = []
    for path in sorted(PACKAGE.rglob("*cli.py")):
        text = path.read_text(encoding="utf-8")
        restated += [
            f"{path.relative_to(PACKAGE)}: {m.group(0).strip()}"
            for m in _RESTATED_PROGRESS.finditer(text)
        ]
    assert restated == []


def test_bar_callback_moves_the_bar_and_sets_its_total():
    from gmx._progress import bar_callback, progress_bar

    bar = progress_bar("test")  # stderr is captured here, not a terminal: the bar draws nothing
    try:
        assert bar.total is None and bar.disable
        update = bar_callback(bar)
        update(0, 5)
        update(3, 5)
        assert (bar.n, bar.total) == (3, 5)
    finally:
        bar.close()
    with progress_bar("faces", ["a", "b"], unit="face") as bar:
        assert list(bar) == ["a", "b"] and bar.total == 2


def test_progress_bars_go_to_stderr_and_only_on_a_terminal(monkeypatch):
    import sys

    import tqdm

    from gmx._progress import progress_bar

    made = []
    monkeypatch.setattr(tqdm, "tqdm", lambda *a, **k: made.append((a, k)))
    progress_bar("embed gallery", total=3)
    progress_bar("pairs", [1], unit="face")
    assert made == [
        ((None,), dict(total=3, desc="embed gallery", unit="img", file=sys.stderr, disable=None)),
        (([1],), dict(total=None, desc="pairs", unit="face", file=sys.stderr, disable=None)),
    ]


def test_hpo_id_accepts_a_term_and_refuses_anything_else():
    assert _cli_args.hpo_id(" HP:0000316 ") == "HP:0000316"
    for bad in ("HP:316", "hp:0000316", "0000316", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="not an HPO term id"):
            _cli_args.hpo_id(bad)


def test_hpo_options_collect_checked_terms(capsys):
    terms = ["--hpo", "HP:0000316", "--hpo", " HP:0000154", "--absent-hpo", "HP:0000252"]
    args = build_parser().parse_args(["report", "p.jpg", "--out", "c.pdf", *terms])
    assert (args.hpo, args.absent_hpo) == (["HP:0000316", "HP:0000154"], ["HP:0000252"])
    assert build_parser().parse_args(["predict", "p.jpg"]).hpo == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "p.jpg", "--out", "c.pdf", "--absent-hpo", "HP:1"])
    assert "not an HPO term id" in capsys.readouterr().err
