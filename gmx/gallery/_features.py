"""The facial features (HPO terms) of the suggested syndromes, and the user's verdict on each.

- :func:`suggested_features`: every HPO term of the top-k syndromes of a ranking (the gallery's
  syndrome metadata), once, in rank order of the first syndrome that lists it, with its label from
  :mod:`gmx.hpo` and the suggested syndromes that have it.
- :class:`FeatureChoices`: which of those terms the user marked present and which absent (the
  rest: not assessed). The exports take them: :func:`~gmx.gallery.to_phenopacket` (present terms as
  phenotypic features, absent ones as excluded features) and :func:`~gmx.gallery.to_service_json`
  (``gmx.confirmed_hpo`` / ``gmx.rejected_hpo``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gmx.gallery._model import Gallery
from gmx.gallery._rank import Ranking
from gmx.hpo import HpoTerm, hpo_terms


@dataclass(frozen=True)
class SuggestedFeature:
    """One HPO term of the suggested syndromes.

    Attributes:
        term: the id and its label (``label=None`` when the shipped HPO does not hold it).
        syndromes: display names of the suggested syndromes that list the term, in rank order.
    """

    term: HpoTerm
    syndromes: tuple[str, ...]

    @property
    def hpo_id(self) -> str:
        return self.term.hpo_id


def suggested_features(
    ranking: Ranking, gallery: Gallery, top_k: int | None = None
) -> tuple[SuggestedFeature, ...]:
    """The HPO terms of the ranking's top-k syndromes, each once.

    Args:
        ranking: from :func:`~gmx.gallery.rank` on ``gallery``.
        gallery: whose syndrome metadata holds the terms (``Syndrome.hpo``); a ranked syndrome the
            gallery does not describe contributes nothing.
        top_k: the first this many syndromes (``None``: all the ranking holds).

    Returns:
        The terms in order of first appearance (rank order, then the syndrome's own order).
    """
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")
    having: dict[str, list[str]] = {}
    for match in ranking.syndromes[:top_k]:
        syndrome = gallery.syndromes.get(match.syndrome_id)
        if syndrome is None:
            continue
        for hpo_id in dict.fromkeys(h.strip() for h in syndrome.hpo if h.strip()):
            names = having.setdefault(hpo_id, [])
            if match.name not in names:
                names.append(match.name)
    terms = hpo_terms(having)
    return tuple(SuggestedFeature(t, tuple(having[t.hpo_id])) for t in terms)


@dataclass(frozen=True)
class FeatureChoices:
    """The user's verdict on suggested facial features: HPO ids marked present and absent.

    Terms in neither are not assessed. A term cannot be both (``ValueError``); duplicates are
    dropped, order kept.
    """

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        present = tuple(dict.fromkeys(self.present))
        absent = tuple(dict.fromkeys(self.absent))
        both = sorted(set(present) & set(absent))
        if both:
            raise ValueError(f"HPO terms both present and absent: {', '.join(both)}")
        object.__setattr__(self, "present", present)
        object.__setattr__(self, "absent", absent)


__all__ = ["FeatureChoices", "SuggestedFeature", "suggested_features"]
