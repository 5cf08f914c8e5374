"""Encoders: native GestaltMatcher backbones, checkpoint loaders, ensembles with TTA."""

from __future__ import annotations

from gmx.encode.iresnet import IResNet, iresnet, iresnet50, iresnet100

__all__ = ["IResNet", "iresnet", "iresnet50", "iresnet100"]
