"""The scorecard's metric engine shares forward passes (issue 11): infidelity's clean and perturbed
passes once per face for all methods, ROAD's clean batch once for all methods and percentiles, with
values equal bit for bit to recomputing them per method."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

import gmx.metrics.scorecard as scorecard
from gmx.explain.engine import as_explain_model, variant_rows
from gmx.metrics.robustness import ForwardMemo, infidelity, similarity_forward
from gmx.metrics.scorecard import (
    FORWARD_METRICS,
    ScorecardSettings,
    column,
    forward_metrics,
    score_rows,
    scorecard_maps,
    syndrome_score_targets,
)

METHODS = ("saliency", "random", "edges")
PERCENTILES = (20, 50, 80)
SAMPLES = 3


def _settings() -> ScorecardSettings:
    return ScorecardSettings(
        methods=METHODS, steps=3, mprt_images=0, n_boot=10, road_percentiles=PERCENTILES,
        infidelity_samples=SAMPLES,
    ).resolved()  # fmt: skip


def _masks_and_regions() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    masks = np.zeros((3, 112, 112), bool)
    masks[:, 40:70, 30:80] = True
    return masks, {"S:1": masks[0], "S:2": np.roll(masks[0], 30, axis=0)}


@contextmanager
def _count_passes(monkeypatch: pytest.MonkeyPatch, backbone: torch.nn.Module):
    """Backbone passes made inside the scorecard's ``_road`` and ``infidelity`` calls."""
    counts = {"road": 0, "infidelity": 0}
    phase: list[str] = []

    def spy(name, real):
        def call(*args, **kwargs):
            phase.append(name)
            try:
                return real(*args, **kwargs)
            finally:
                phase.pop()

        return call

    monkeypatch.setattr(scorecard, "_road", spy("road", scorecard._road))
    monkeypatch.setattr(scorecard, "infidelity", spy("infidelity", scorecard.infidelity))
    hook = backbone.register_forward_hook(
        lambda *_: counts.__setitem__(phase[-1], counts[phase[-1]] + 1) if phase else None
    )
    try:
        yield counts
    finally:
        hook.remove()


@pytest.fixture(scope="module")
def engine(tiny):
    """score_rows' values (shared) and the per-method values (nothing shared) of the same faces."""
    s = _settings()
    masks, regions = _masks_and_regions()
    labels = np.array(tiny.labels)
    rows = score_rows(tiny.model, tiny.gallery, tiny.faces, labels, masks, regions, s)
    maps = scorecard_maps(tiny.model, tiny.gallery, tiny.faces, labels, METHODS)
    from gmx.aggregate.run import gallery_ensemble

    emb = gallery_ensemble(tiny.model, tiny.gallery).embed(tiny.faces)
    targets = syndrome_score_targets(tiny.gallery, emb, labels)
    kw = dict(maps=maps, targets=targets, labels=list(labels), settings=s)
    unshared = forward_metrics(tiny.model, tiny.gallery, tiny.faces, shared=False, **kw)
    shared = forward_metrics(tiny.model, tiny.gallery, tiny.faces, shared=True, **kw)
    return rows, shared, unshared, maps, targets


def test_forward_memo_hits_only_bit_identical_inputs() -> None:
    calls: list[tuple[int, ...]] = []

    def fwd(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x.flatten(1).sum(1) * 2

    memo = ForwardMemo(fwd)
    x = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    first = memo(x)
    assert torch.equal(memo(x.clone()), first)  # same bytes: a hit
    assert (memo.calls, memo.hits) == (1, 1)
    memo(x[:1])  # same row, other batch composition: a miss
    memo(x.to(torch.float64))  # same values, other dtype: a miss
    y = x.clone()
    y[1, 5] = torch.nextafter(y[1, 5], torch.tensor(100.0))
    memo(y)  # one ulp apart: a miss
    assert (memo.calls, memo.hits) == (4, 1)
    got = memo(x)
    got += 1  # a hit is a copy: the stored output is not modified
    assert torch.equal(memo(x), first)
    g = x.clone().requires_grad_(True)
    assert memo(g).requires_grad and memo.calls == 5  # autograd inputs bypass the memo
    assert calls == [(2, 6), (1, 6), (2, 6), (2, 6), (2, 6)]


def test_infidelity_shared_per_face_is_exactly_per_method(tiny) -> None:
    model = as_explain_model(tiny.model)
    inputs = variant_rows(tiny.faces, tiny.gallery.variants[0], model.card)
    labels = np.array(tiny.labels)
    from gmx.aggregate.run import gallery_ensemble

    emb = gallery_ensemble(tiny.model, tiny.gallery).embed(tiny.faces)
    target = syndrome_score_targets(tiny.gallery, emb, labels)[0]
    rng = np.random.default_rng(1)
    maps = [torch.from_numpy(rng.normal(size=(1, 112, 112)).astype(np.float32)) for _ in range(3)]
    memo = ForwardMemo(similarity_forward(tiny.model, target, 0))
    kw = dict(n_samples=SAMPLES, seed=7)
    shared = [infidelity(memo, inputs[:1], a, **kw) for a in maps]
    alone = [
        infidelity(similarity_forward(tiny.model, target, 0), inputs[:1], a, **kw) for a in maps
    ]
    for a, b in zip(shared, alone, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    # clean + perturbed batch once, then answered from the memo for the other two maps
    assert (memo.calls, memo.hits) == (2, 4)


@pytest.mark.parametrize("metric", ["infidelity", "road_morf"])
def test_shared_values_exactly_equal_the_per_method_ones(engine, metric) -> None:
    rows, shared, unshared, _, _ = engine
    for m in METHODS:
        key = column(m, metric)
        assert np.isfinite(unshared[key]).all()
        assert np.array_equal(shared[key], unshared[key])
        assert np.array_equal(rows[key], unshared[key])


def test_score_rows_forward_columns_equal_the_unshared_engine(engine) -> None:
    rows, shared, unshared, _, _ = engine
    assert shared.keys() == unshared.keys()
    names = {*FORWARD_METRICS, "deletion_curve", "insertion_curve"}
    assert {k.split(":")[1] for k in unshared} == names
    for key, value in unshared.items():
        assert np.array_equal(rows[key], value, equal_nan=True), key
        assert np.array_equal(shared[key], value, equal_nan=True), key


def test_score_rows_runs_shared_passes_once(tiny, monkeypatch) -> None:
    """Old code: ROAD ran the clean batch once per method and percentile (2 passes per method and
    percentile), infidelity its clean and perturbed passes once per face and method."""
    s = _settings()
    masks, regions = _masks_and_regions()
    backbone = as_explain_model(tiny.model).backbone
    with _count_passes(monkeypatch, backbone) as counts:
        score_rows(tiny.model, tiny.gallery, tiny.faces, np.array(tiny.labels), masks, regions, s)
    n, m, p = len(tiny.faces), len(METHODS), len(PERCENTILES)
    assert counts == {"road": 1 + m * p, "infidelity": 2 * n}
