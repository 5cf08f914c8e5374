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


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run these tests single-threaded (restored afterwards).

    The CI/dev box has 2 cores shared by several jobs; with 2 OpenMP threads a busy neighbour makes
    every op wait on a preempted thread (measured 0.36 s vs 0.013 s per tiny forward pass).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
