"""The synthetic syndromes of the embedded demo: ONE table.

Each syndrome is 1-3 :mod:`gmx.synth.features` (named after real HPO terms), a fictional name and a
fake id (``SYN:0001``); none is a real disorder, none has an OMIM number. ``patients`` is the
number of synthetic patients generated; syndromes with more than 6 patients form the *frequent*
set (classifier classes), those with 2-6 the *rare* set (never trained on), as in GMDB. The
unaffected cohort (``SYN:0000``) has no features and an empty ground-truth mask.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmx.synth.features import Feature, get_feature

#: GMDB's cut between rare (2-6 patients) and frequent (> 6) disorders.
FREQUENT_MIN_PATIENTS = 7


@dataclass(frozen=True)
class SyntheticSyndrome:
    """One synthetic disorder.

    Attributes:
        syndrome_id: fake id, ``SYN:0001`` ... (``SYN:0000`` is the unaffected cohort).
        name: fictional display name naming its features.
        features: keys of its :class:`~gmx.synth.features.Feature` (1-3; none for unaffected).
        patients: number of synthetic patients generated.
        omim: always ``None`` (fictional disorder).
    """

    syndrome_id: str
    name: str
    features: tuple[str, ...]
    patients: int
    omim: None = None

    @property
    def feature_objects(self) -> tuple[Feature, ...]:
        """The :class:`Feature` objects, in table order."""
        return tuple(get_feature(k) for k in self.features)

    @property
    def hpo(self) -> tuple[str, ...]:
        """HPO ids of its features."""
        return tuple(f.hpo_id for f in self.feature_objects)

    @property
    def is_unaffected(self) -> bool:
        """True for the unaffected cohort."""
        return not self.features

    @property
    def group(self) -> str:
        """``"frequent"``, ``"rare"`` or ``"unaffected"``."""
        if self.is_unaffected:
            return "unaffected"
        return "frequent" if self.patients >= FREQUENT_MIN_PATIENTS else "rare"


def _s(letter: str, number: int, features: tuple[str, ...], patients: int) -> SyntheticSyndrome:
    names = " + ".join(get_feature(k).hpo_name.lower() for k in features)
    return SyntheticSyndrome(
        f"SYN:{number:04d}", f"Synthetic syndrome {letter} ({names})", features, patients
    )


#: The table. Frequent syndromes first (largest first), then rare ones.
SYNDROMES: tuple[SyntheticSyndrome, ...] = (
    _s("A", 1, ("hypertelorism", "wide_mouth"), 110),
    _s("B", 2, ("downslanted_pf", "ptosis"), 95),
    _s("C", 3, ("long_philtrum", "thin_upper_lip"), 80),
    _s("D", 4, ("synophrys", "thin_upper_lip"), 70),
    _s("E", 5, ("micrognathia", "short_pf"), 60),
    _s("F", 6, ("broad_nasal_tip", "full_cheeks"), 48),
    _s("G", 7, ("upslanted_pf", "thick_lower_lip"), 38),
    _s("H", 8, ("hypotelorism", "narrow_mouth"), 28),
    _s("I", 9, ("wide_mouth", "thick_lower_lip", "full_cheeks"), 20),
    _s("J", 10, ("micrognathia",), 12),
    _s("K", 11, ("thick_eyebrow", "hypertelorism"), 6),
    _s("L", 12, ("ptosis",), 5),
    _s("M", 13, ("short_pf", "thin_upper_lip", "long_philtrum"), 4),
    _s("N", 14, ("broad_nasal_tip", "downslanted_pf"), 3),
    _s("O", 15, ("synophrys", "thick_eyebrow", "micrognathia"), 2),
)

#: The unaffected cohort (contrasts and controls), not a GMDB disorder.
UNAFFECTED = SyntheticSyndrome("SYN:0000", "Unaffected (synthetic controls)", (), 100)


def all_classes() -> tuple[SyntheticSyndrome, ...]:
    """Every syndrome of the table followed by the unaffected cohort."""
    return (*SYNDROMES, UNAFFECTED)


def get_syndrome(syndrome_id: str) -> SyntheticSyndrome:
    """The syndrome (or the unaffected cohort) with this id; ``ValueError`` otherwise."""
    for s in all_classes():
        if s.syndrome_id == syndrome_id:
            return s
    raise ValueError(f"unknown synthetic syndrome id {syndrome_id!r}")


def is_synthetic(syndrome_id: str, name: str) -> bool:
    """True when a gallery syndrome is one of this table's (same id and same fictional name): a
    synthetic demo disorder, which has no OMIM entry and no genes."""
    return any(s.syndrome_id == syndrome_id and s.name == name for s in all_classes())


__all__ = [
    "FREQUENT_MIN_PATIENTS",
    "SYNDROMES",
    "UNAFFECTED",
    "SyntheticSyndrome",
    "all_classes",
    "get_syndrome",
    "is_synthetic",
]
