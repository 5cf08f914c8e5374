"""Contract tests parametrised over every registered method (and both backends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.explain import SimilarityTarget, explain, get_method, list_methods
from gmx.explain._trace import active_trace
from gmx.explain.prepared import engine_model, reference_model

from .helpers import gallery, hook_count, tiny_iresnet

# Small settings keep every method fast on the tiny model; the contract does not depend on them.
FAST = {
    "occlusion": {"window": 16, "stride": 16},
    "integrated_gradients": {"steps": 4},
}


def _params(name: str) -> dict:
    return {name: FAST[name]} if name in FAST else {}


def _cases() -> list[tuple[str, str]]:
    cases = [(n, "engine") for n in list_methods()]
    cases += [(n, "reference") for n in list_methods() if get_method(n).reference is not None]
    return cases


@pytest.fixture(scope="module")
def model():
    return tiny_iresnet(0)


@pytest.mark.parametrize(("name", "backend"), _cases())
def test_method_contract(model, face, name: str, backend: str) -> None:
    target = SimilarityTarget(gallery(64), "g")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    face_before = face.copy()
    hooks_before = hook_count(model)

    out1 = explain(model, face, target, methods=[name], params=_params(name), backend=backend)
    out2 = explain(model, face, target, methods=[name], params=_params(name), backend=backend)
    a, b = out1[name], out2[name]

    # Shape, dtype, finiteness, read-only.
    assert a.values.shape == (112, 112) and a.values.dtype == np.float32
    assert a.raw.ndim == 2 and a.raw.dtype == np.float32
    assert np.isfinite(a.values).all() and np.isfinite(a.raw).all()
    assert not a.values.flags.writeable and not a.raw.flags.writeable
    assert a.method == name and a.backend == backend and a.elapsed_s >= 0
    assert a.signed == get_method(name).is_signed(a.params)
    # Deterministic (random baseline and SmoothGrad noise are seeded).
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.raw, b.raw)
    # The user's model and inputs are untouched; no hooks left anywhere.
    np.testing.assert_array_equal(face, face_before)
    assert hook_count(model) == hooks_before == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for k, p in model.named_parameters():
        assert p.requires_grad == flags[k] and p.grad is None, k
    assert not model.training
    em = engine_model(model)
    assert hook_count(em.backbone) == em.tap_count
    assert hook_count(reference_model(model).backbone) == 0
    assert active_trace() is None


@pytest.mark.parametrize("name", [n for n in list_methods() if get_method(n).smoothable])
def test_smoothgrad_contract(model, face, name: str) -> None:
    target = SimilarityTarget(gallery(64))
    params = {**FAST.get(name, {}), "smooth_samples": 3, "smooth_sigma": 0.1, "seed": 7}
    a = explain(model, face, target, methods=[name], params={name: params})[name]
    b = explain(model, face, target, methods=[name], params={name: params})[name]
    plain = explain(model, face, target, methods=[name], params={name: FAST.get(name, {})})[name]
    np.testing.assert_array_equal(a.values, b.values)
    assert np.isfinite(a.values).all()
    assert not np.allclose(a.values, plain.values)
    c = explain(model, face, target, methods=[name], params={name: {**params, "seed": 8}})[name]
    assert not np.array_equal(a.values, c.values)
