"""Argument helpers shared by the ``gmx`` subcommands (one implementation for every CLI module).

``gmx.cli`` imports the subcommand modules (``gmx.report.cli``, ``gmx.serve.cli``,
``gmx.metrics.cli``, ...) to register them, so they cannot import these helpers from ``gmx.cli``
(an import cycle); they all import them from here. At load time it imports only :mod:`gmx.config`
(torch and the HPO table are imported when a helper runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gmx.config import GmxConfig, from_cli_args

#: Help texts of the model options (every command shows the same ones).
MODELS_HELP = "model files (default: the embedded demo)"
GALLERY_HELP = "gallery .sqlite (default: the embedded demo)"
NO_FLIP_HELP = "no mirrored test-time variants"
NO_GREY_HELP = "no grey test-time variants"
MIN_DISTANCE_HELP = "drop gallery matches at or below this distance (the service uses 0.3)"


def configured(args: argparse.Namespace) -> GmxConfig:
    """The command's configuration (:func:`gmx.config.from_cli_args`), with its torch thread policy
    applied (:func:`apply_threads`): how every command that runs the model reads its configuration."""
    return apply_threads(from_cli_args(args))


def apply_threads(cfg: GmxConfig) -> GmxConfig:
    """Apply ``cfg``'s torch thread policy (``runtime.threads`` / ``GMX_THREADS``; 0 = one thread
    per two cores), as the app does, and return ``cfg``. For a command that must check more before
    torch is imported (``gmx serve``); the others use :func:`configured`."""
    from gmx.device import set_threads

    set_threads(cfg.threads)
    return cfg


def hpo_id(text: str) -> str:
    """An ``--hpo`` value (an argparse ``type``): ``HP:`` and seven digits."""
    from gmx.hpo import HPO_ID_PATTERN

    value = text.strip()
    if not HPO_ID_PATTERN.match(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not an HPO term id (HP: and seven digits)")
    return value


def add_model_args(
    p: argparse.ArgumentParser,
    *,
    gallery: bool = True,
    tta: bool = True,
    models_help: str = MODELS_HELP,
) -> None:
    """``--models`` (and ``--gallery``, ``--no-flip``, ``--no-grey``), read by ``from_cli_args``.

    Args:
        p: the command's parser.
        gallery: add ``--gallery`` (not for commands that take a gallery otherwise, or none).
        tta: add ``--no-flip`` / ``--no-grey`` (not for commands that do not embed with the
            test-time variants).
        models_help: ``--models``'s help, where the models serve a narrower purpose.
    """
    p.add_argument("--models", nargs="+", type=Path, help=models_help)
    if gallery:
        p.add_argument("--gallery", type=Path, help=GALLERY_HELP)
    if tta:
        p.add_argument("--no-flip", action="store_true", help=NO_FLIP_HELP)
        p.add_argument("--no-grey", action="store_true", help=NO_GREY_HELP)


def add_hpo_arg(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    """An HPO term option (``flag``, e.g. ``--hpo``) that may be repeated: a list, empty by default,
    each value checked by :func:`hpo_id`."""
    p.add_argument(flag, type=hpo_id, action="append", default=[], metavar="HP:NNNNNNN", help=help)


def add_min_distance_arg(p: argparse.ArgumentParser) -> None:
    """``--min-distance`` (default off), passed to :meth:`gmx.pipeline.Diagnoser.diagnose`."""
    p.add_argument("--min-distance", type=float, default=None, help=MIN_DISTANCE_HELP)


__all__ = [
    "GALLERY_HELP",
    "MIN_DISTANCE_HELP",
    "MODELS_HELP",
    "NO_FLIP_HELP",
    "NO_GREY_HELP",
    "add_hpo_arg",
    "add_min_distance_arg",
    "add_model_args",
    "apply_threads",
    "configured",
    "hpo_id",
]
