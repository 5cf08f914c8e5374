"""Progress bars of the ``gmx`` commands (one implementation for every CLI module): tqdm on stderr,
off when stderr is not a terminal (``disable=None``), so stdout stays the command's answer.

Like :mod:`gmx._cli_args` it is imported by ``gmx.cli`` and by the subcommand modules it registers;
tqdm is imported only when a bar is made.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

X = TypeVar("X")


def progress_bar(
    desc: str, iterable: Iterable[X] | None = None, *, total: int | None = None, unit: str = "img"
) -> tqdm[X]:
    """A bar named ``desc`` counting ``unit``: over ``iterable`` when given (iterate the bar), else
    moved by hand or by :func:`bar_callback`; ``total`` may be unknown (``None``) until then."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=None)


def bar_callback(bar: tqdm) -> Callable[[int, int], None]:
    """The ``progress(done, total)`` callback of the library's long runs (gallery embedding,
    batch maps, scorecard, pairs) that moves ``bar``: it sets the total too, which a run may only
    know once it has started (resumed chunks, shards)."""

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update


__all__ = ["bar_callback", "progress_bar"]
