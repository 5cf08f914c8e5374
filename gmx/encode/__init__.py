"""Encoders: native GestaltMatcher backbones, checkpoint loaders, ensembles with TTA.

Public surface (see ``docs/architecture.md``, section gmx.encode, and ``docs/models.md``):

* backbones: :class:`IResNet` (insightface layout), :func:`iresnet50`, :func:`iresnet100`,
  :func:`iresnet`; :class:`FaceRecogNet` (original GestaltMatcher);
* :class:`GestaltModel` (backbone + optional classifier), :class:`ModelCard`, :class:`LoadedModel`,
  :func:`preprocess` (the one place faces become model input; :func:`normalize`, :func:`input_norm`);
* :func:`load_model` (any supported format), :func:`save_model` (gmx format);
* :class:`Ensemble` (models x TTA variants -> ``(N, V, D)`` embeddings);
* map geometry (:mod:`gmx.encode.geometry`): :class:`CellGrid`, :func:`cell_grid` (measured cell
  centres per backbone), :func:`place_map`.
"""

from __future__ import annotations

from gmx.encode.ensemble import Ensemble, derive_gm_image
from gmx.encode.facerecognet import FaceRecogNet
from gmx.encode.geometry import CellGrid, cell_grid, measure_cell_grid, place_map
from gmx.encode.iresnet import IResNet, iresnet, iresnet50, iresnet100
from gmx.encode.load import UnsafePickleWarning, card_path_for, load_model, save_model
from gmx.encode.model import (
    IRESNET_NORM,
    GestaltModel,
    LoadedModel,
    ModelCard,
    build_backbone,
    default_card,
    denormalize,
    input_norm,
    iresnet_architecture,
    normalize,
    preprocess,
    rgb_to_grey,
    weights_fingerprint,
)
from gmx.variants import Variant

__all__ = [
    "IRESNET_NORM",
    "CellGrid",
    "Ensemble",
    "FaceRecogNet",
    "GestaltModel",
    "IResNet",
    "LoadedModel",
    "ModelCard",
    "UnsafePickleWarning",
    "Variant",
    "build_backbone",
    "card_path_for",
    "cell_grid",
    "default_card",
    "denormalize",
    "derive_gm_image",
    "input_norm",
    "iresnet",
    "iresnet50",
    "iresnet100",
    "iresnet_architecture",
    "load_model",
    "measure_cell_grid",
    "normalize",
    "place_map",
    "preprocess",
    "rgb_to_grey",
    "save_model",
    "weights_fingerprint",
]
