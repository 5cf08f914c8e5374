"""The cheap metrics on every registered explanation method (tiny model): well-formed, pure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gmx.encode import Variant
from gmx.explain import SimilarityTarget, explain, list_methods, variant_input
from gmx.metrics import entropy, faithfulness_curves, localisation_metrics, sparseness
from tests.explain.helpers import gallery, tiny_iresnet

FAST = {"occlusion": {"window": 16, "stride": 16}, "integrated_gradients": {"steps": 4}}
MASK = np.zeros((112, 112), bool)
MASK[40:70, 30:80] = True


@pytest.fixture(scope="module")
def model():
    return tiny_iresnet(0)


@pytest.mark.parametrize("name", list_methods())
def test_cheap_metrics_contract(model, face, name: str) -> None:
    target = SimilarityTarget(gallery(64), "g")
    params = {name: FAST[name]} if name in FAST else {}
    values = np.array(explain(model, face, target, methods=[name], params=params)[name].values)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    face_before, values_before = face.copy(), values.copy()

    curves = faithfulness_curves(
        model, face[None], {name: values[None]}, [target],
        modes=("deletion", "insertion"), orders=("most", "least"), fills=("mean",), steps=4,
    )  # fmt: skip
    loc = localisation_metrics(values, MASK)
    gini, ent = sparseness(values), entropy(values)

    # Inputs untouched (face, map, model weights).
    np.testing.assert_array_equal(face, face_before)
    np.testing.assert_array_equal(values, values_before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k

    assert len(curves) == 4 and {c.method for c in curves} == {name}
    with torch.no_grad():
        clean = float(target(model(variant_input(face, Variant(0)))))
    for c in curves:
        assert c.scores.shape == (5,) and np.isfinite(c.scores).all()
        assert c.scores.min() >= -1 - 1e-6 and c.scores.max() <= 1 + 1e-6  # cosine
        assert np.isfinite(c.auc) and c.ranks is None
        end = c.scores[0] if c.mode == "deletion" else c.scores[-1]
        assert end == pytest.approx(clean, abs=1e-5)  # the unperturbed face
    # Deletion least-first and most-first end at the same fully filled face.
    dm, dl = (c for c in curves if c.mode == "deletion")
    assert dm.scores[-1] == pytest.approx(dl.scores[-1], abs=1e-6)

    for v in (loc.relevance_rank, loc.pointing_game, loc.auroc):
        assert 0.0 <= v <= 1.0
    assert math.isnan(loc.relevance_mass) or 0.0 <= loc.relevance_mass <= 1.0
    assert loc.area == pytest.approx(MASK.mean())
    if np.abs(values).sum() > 0:
        assert 0.0 <= gini < 1.0
        assert 0.0 <= ent <= math.log(values.size) + 1e-9
