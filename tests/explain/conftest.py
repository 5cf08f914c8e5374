"""Fixtures for gmx.explain tests."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.encode.iresnet import IResNet

from .helpers import astronaut_face, deeper_iresnet, synthetic_face, tiny_iresnet


@pytest.fixture()
def tiny_model() -> IResNet:
    return tiny_iresnet(0)


@pytest.fixture(scope="module")
def deeper_model() -> IResNet:
    return deeper_iresnet(1)


@pytest.fixture()
def face() -> np.ndarray:
    return synthetic_face()


@pytest.fixture(scope="module")
def real_face() -> np.ndarray:
    return astronaut_face()
