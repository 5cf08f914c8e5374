"""Synthetic-phenotype demo data: synthetic patients whose syndrome features' regions are known.

Build time only (``python -m gmx.synth build --out models/demo --seed 0``); the app and the library
read the committed result with :func:`load_demo_data`. See docs/synth.md.
"""

from __future__ import annotations

from gmx.synth.dataset import DemoData, DemoDataError, load_demo_data
from gmx.synth.features import FEATURES, STRENGTH_RANGE, Feature, get_feature
from gmx.synth.montage import OUTLINE_COLOUR, draw_outline
from gmx.synth.syndromes import (
    FREQUENT_MIN_PATIENTS,
    SYNDROMES,
    UNAFFECTED,
    SyntheticSyndrome,
    all_classes,
    get_syndrome,
    is_synthetic,
)

__all__ = [
    "FEATURES",
    "FREQUENT_MIN_PATIENTS",
    "OUTLINE_COLOUR",
    "STRENGTH_RANGE",
    "SYNDROMES",
    "UNAFFECTED",
    "DemoData",
    "DemoDataError",
    "Feature",
    "SyntheticSyndrome",
    "all_classes",
    "draw_outline",
    "get_feature",
    "get_syndrome",
    "is_synthetic",
    "load_demo_data",
]
