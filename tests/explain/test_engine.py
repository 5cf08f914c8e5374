"""Engine behaviour: variants (TTA), several targets, progress/cancellation, threads, hooks, cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from gmx.explain import (
    THESIS_PANEL,
    ContrastTarget,
    ExplainModel,
    ExplanationCancelled,
    LogitTarget,
    SimilarityTarget,
    explain,
    explain_targets,
    iter_explain,
    variant_input,
)
from gmx.explain._trace import active_trace
from gmx.explain.prepared import engine_model, reference_model
from gmx.explain.targets import Target, TargetFn
from gmx.variants import Variant

from .helpers import face_input, gallery, hook_count, tiny_iresnet

FAST = {"occlusion": {"window": 16, "stride": 16}, "integrated_gradients": {"steps": 4}}
QUICK = ("saliency", "guided_backprop", "deeplift", "gradcam", "fullgrad")


def test_variant_input_convention(face) -> None:
    x = variant_input(face, Variant(0))
    assert x.shape == (1, 3, 112, 112) and x.dtype == torch.float32
    torch.testing.assert_close(x, face_input(face), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="112, 112, 3"):
        variant_input(face[:100], Variant(0))
    with pytest.raises(ValueError, match="uint8"):
        variant_input(face.astype(np.float32), Variant(0))


def test_flipped_variant_is_mirrored_back(tiny_model, face) -> None:
    # Explaining the flipped variant of a face == mirroring the map of the mirrored face.
    g = gallery(64)
    methods = (*QUICK, "occlusion", "integrated_gradients")
    flipped = explain(
        tiny_model, face, SimilarityTarget(g), [Variant(0, flip=True)], methods=methods, params=FAST
    )
    mirrored = explain(
        tiny_model,
        np.ascontiguousarray(face[:, ::-1]),
        SimilarityTarget(g),
        methods=methods,
        params=FAST,
    )
    for name in ("saliency", "guided_backprop", "deeplift", "gradcam", "fullgrad"):
        np.testing.assert_allclose(
            flipped[name].values, mirrored[name].values[:, ::-1], rtol=1e-5, atol=1e-7, err_msg=name
        )
    # Window grid is not mirror-symmetric (captum's grid starts at the left edge): compare loosely.
    assert (
        np.corrcoef(
            flipped["occlusion"].values.ravel(), mirrored["occlusion"].values[:, ::-1].ravel()
        )[0, 1]
        > 0.9
    )


def test_variant_input_is_what_the_encoder_feeds(face) -> None:
    from gmx.encode import default_card, preprocess

    card = default_card(name="t", architecture="iresnet50")
    for flip in (False, True):
        for grey in (False, True):
            got = variant_input(face, Variant(0, flip=flip, grey=grey))
            want = preprocess(face[None], card, flip=flip, grey=grey)
            assert torch.equal(got, want)
            assert torch.equal(variant_input(face, Variant(0, flip=flip, grey=grey), card), want)
    grey = variant_input(face, Variant(0, grey=True))
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(variant_input(face, Variant(0)), face_input(face), rtol=0, atol=1e-6)
    bgr = default_card(name="t", architecture="iresnet50", colour_order="BGR")
    torch.testing.assert_close(
        variant_input(face, Variant(0), bgr), face_input(face).flip(1), rtol=0, atol=1e-6
    )


def test_loaded_model_and_bgr_card(face) -> None:
    from gmx.encode import GestaltModel, LoadedModel, default_card

    backbone = tiny_iresnet(0)
    card = default_card(name="t", architecture="iresnet50", colour_order="BGR", embedding_dim=64)
    loaded = LoadedModel(model=GestaltModel(backbone), card=card, fingerprint="x")
    target = SimilarityTarget(gallery(64))
    via_card = explain(loaded, face, target, methods=["gradcam", "edges"])
    plain = explain(backbone, face, target, methods=["gradcam", "edges"])
    # BGR input is a different input to the network, but the face's edges are the same.
    assert not np.allclose(via_card["gradcam"].values, plain["gradcam"].values)
    np.testing.assert_allclose(
        via_card["edges"].values, plain["edges"].values, rtol=1e-5, atol=1e-6
    )
    ref = explain(loaded, face, target, methods=["edges"], backend="reference")
    np.testing.assert_allclose(ref["edges"].values, plain["edges"].values, rtol=1e-5, atol=1e-6)


def test_variants_are_averaged_with_their_own_gallery_rows(face) -> None:
    m0, m1 = tiny_iresnet(0), tiny_iresnet(1)
    rows = gallery(64, rows=3, seed=4)
    variants = [Variant(0), Variant(1, flip=True), Variant(1, grey=True)]
    both = explain([m0, m1], face, SimilarityTarget(rows), variants, methods=QUICK)
    singles = [
        explain([m0, m1], face, SimilarityTarget(rows[i]), [v], methods=QUICK)
        for i, v in enumerate(variants)
    ]
    for name in QUICK:
        mean = np.mean([s[name].values for s in singles], axis=0)
        np.testing.assert_allclose(both[name].values, mean, rtol=1e-5, atol=1e-7, err_msg=name)
        # a flipped variant and two models' grids: no cell grid holds the mean, raw is the pixels
        np.testing.assert_array_equal(both[name].raw, both[name].values, err_msg=name)
        assert both[name].variants == tuple(variants)
    with pytest.raises(ValueError, match="gallery row"):
        explain([m0, m1], face, SimilarityTarget(rows[:2]), variants, methods=["saliency"])
    with pytest.raises(ValueError, match="names no model"):
        explain(m0, face, SimilarityTarget(rows), [Variant(1)], methods=["saliency"])


def test_several_targets_equal_separate_calls(tiny_model, face) -> None:
    targets = [SimilarityTarget(gallery(64, seed=s), f"s{s}") for s in range(3)]
    methods = (*QUICK, "deconvolution", "occlusion", "integrated_gradients")
    together = explain_targets(tiny_model, face, targets, methods=methods, params=FAST)
    assert len(together) == 3
    for target, maps in zip(targets, together, strict=True):
        alone = explain(tiny_model, face, target, methods=methods, params=FAST)
        assert list(maps) == list(methods)
        for name in methods:
            assert maps[name].target_description == target.description
            np.testing.assert_allclose(
                maps[name].values, alone[name].values, rtol=1e-5, atol=1e-7, err_msg=name
            )


def test_deeplift_completeness_with_similarity_and_contrast_targets(real_face) -> None:
    model = tiny_iresnet(7)
    x = face_input(real_face)
    black = torch.full_like(x, -1.0)
    a, b = SimilarityTarget(gallery(64, seed=1)), SimilarityTarget(gallery(64, seed=2))
    for target in (a, ContrastTarget(a, b)):
        amap = explain(model, real_face, target, methods=["deeplift"])["deeplift"]
        fn = target.bind(0)
        with torch.no_grad():
            delta = float(fn(model(x)) - fn(model(black)))
        # Exact to float rounding (docs/explain.md): 1e-5 relative, or the float32 rounding of the
        # two scores behind delta (3e-7).
        assert abs(float(amap.values.sum(dtype=np.float64)) - delta) <= 1e-5 * abs(delta) + 3e-7
        assert abs(float(amap.raw.sum(dtype=np.float64)) - delta) <= 1e-5 * abs(delta) + 3e-7


class _Classified:
    """Stands in for gmx.encode.GestaltModel: ``.backbone`` and ``.classifier``."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module | None) -> None:
        self.backbone = backbone
        self.classifier = classifier


def test_logit_target_uses_the_classifier(tiny_model, face) -> None:
    torch.manual_seed(0)
    clf = nn.Linear(64, 5)
    target = LogitTarget(3, "class three")
    a = explain(_Classified(tiny_model, clf), face, target, methods=QUICK)
    b = explain(ExplainModel(tiny_model, clf), face, target, methods=QUICK)
    c = explain(tiny_model, face, target, methods=QUICK, classifiers=[clf])
    for name in QUICK:
        np.testing.assert_array_equal(a[name].values, b[name].values)
        np.testing.assert_array_equal(a[name].values, c[name].values)
    # The logit is linear in the embedding: DeepLIFT multipliers are the classifier row.
    x = face_input(face)
    with torch.no_grad():
        delta = float(clf(tiny_model(x))[0, 3] - clf(tiny_model(torch.full_like(x, -1)))[0, 3])
    assert a["deeplift"].values.sum(dtype=np.float64) == pytest.approx(delta, rel=1e-3)
    with pytest.raises(ValueError, match="needs a classifier"):
        explain(tiny_model, face, target, methods=["saliency"])
    ref = explain(
        ExplainModel(tiny_model, clf), face, target, methods=["deeplift"], backend="reference"
    )
    np.testing.assert_allclose(ref["deeplift"].values, a["deeplift"].values, rtol=1e-4, atol=1e-7)


def test_progress_and_cancellation(tiny_model, face) -> None:
    calls: list[tuple[int, int]] = []
    explain(
        tiny_model,
        face,
        SimilarityTarget(gallery(64)),
        methods=THESIS_PANEL,
        params=FAST,
        progress=lambda d, t: calls.append((d, t)),
    )
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and calls[-1][0] == calls[-1][1] == calls[0][1]
    assert len(calls) > len(THESIS_PANEL)

    stop = threading.Event()
    seen: list[str] = []

    def on_progress(done: int, total: int) -> None:
        if done >= 3:
            stop.set()

    with pytest.raises(ExplanationCancelled) as info:
        for _, amap in iter_explain(
            tiny_model,
            face,
            [SimilarityTarget(gallery(64))],
            methods=("saliency", "gradcam", "occlusion"),
            params=FAST,
            progress=on_progress,
            should_stop=stop,
        ):
            seen.append(amap.method)
    assert seen == ["saliency", "gradcam"]  # fast results came first
    assert set(info.value.completed[0]) == {"saliency", "gradcam"}
    with pytest.raises(ExplanationCancelled):
        explain(
            tiny_model,
            face,
            SimilarityTarget(gallery(64)),
            methods=["saliency"],
            should_stop=lambda: True,
        )


def test_threads_sharing_one_model_get_serial_results(face) -> None:
    model = tiny_iresnet(3)
    methods = (
        "saliency",
        "deconvolution",
        "guided_backprop",
        "deeplift",
        "gradcam",
        "fullgrad",
        "occlusion",
        "integrated_gradients",
    )
    jobs = [SimilarityTarget(gallery(64, seed=s)) for s in range(4)]
    serial = [explain(model, face, t, methods=methods, params=FAST) for t in jobs]
    ref_serial = [
        explain(model, face, t, methods=["guided_backprop"], backend="reference") for t in jobs
    ]
    barrier = threading.Barrier(4)

    def run(i: int):
        barrier.wait()
        eng = explain(model, face, jobs[i], methods=methods, params=FAST)
        ref = explain(model, face, jobs[i], methods=["guided_backprop"], backend="reference")
        return eng, ref

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    for i, (eng, ref) in enumerate(results):
        for name in methods:
            np.testing.assert_array_equal(eng[name].values, serial[i][name].values, err_msg=name)
        for name in ref:
            np.testing.assert_array_equal(ref[name].values, ref_serial[i][name].values)
    assert hook_count(model) == 0


class _Exploding(Target):
    """A target that raises after ``n`` evaluations (simulates a failure mid-method)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    @property
    def description(self) -> str:
        return "exploding"

    def bind(self, variant: int, classifier: nn.Module | None = None) -> TargetFn:
        inner = SimilarityTarget(gallery(64)).bind(0)

        def fn(e: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls > self.n:
                raise RuntimeError("boom")
            return inner(e)

        return fn


@pytest.mark.parametrize("backend", ["engine", "reference"])
@pytest.mark.parametrize(
    "name",
    [
        "saliency",
        "guided_backprop",
        "deeplift",
        "gradcam",
        "fullgrad",
        "occlusion",
        "integrated_gradients",
    ],
)
def test_no_hooks_remain_after_an_exception(tiny_model, face, name: str, backend: str) -> None:
    # Fail in the first forward pass, or (batched engine methods) in the middle of the batches.
    n = 2 if backend == "engine" and name in FAST else 0
    target = _Exploding(n)
    with pytest.raises(RuntimeError, match="boom"):
        params = {**FAST.get(name, {}), **({"batch_size": 1} if name in FAST else {})}
        explain(tiny_model, face, target, methods=[name], params={name: params}, backend=backend)
    assert target.calls == n + 1
    assert hook_count(tiny_model) == 0
    assert hook_count(reference_model(tiny_model).backbone) == 0
    em = engine_model(tiny_model)
    assert hook_count(em.backbone) == em.tap_count
    assert active_trace() is None
    assert all(p.grad is None for p in reference_model(tiny_model).backbone.parameters())


def test_cache_follows_weight_changes(face) -> None:
    model = tiny_iresnet(0)
    target = SimilarityTarget(gallery(64))
    before = explain(model, face, target, methods=["gradcam"])["gradcam"].values
    with torch.no_grad():
        model.layer4[0].conv2.weight.mul_(-1.0)
    after = explain(model, face, target, methods=["gradcam"])["gradcam"].values
    fresh = tiny_iresnet(0)
    with torch.no_grad():
        fresh.layer4[0].conv2.weight.mul_(-1.0)
    expected = explain(fresh, face, target, methods=["gradcam"])["gradcam"].values
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, expected)


def test_input_errors(tiny_model, face) -> None:
    target = SimilarityTarget(gallery(64))
    with pytest.raises(ValueError, match="unknown method"):
        explain(tiny_model, face, target, methods=["nope"])
    with pytest.raises(ValueError, match="no parameter"):
        explain(tiny_model, face, target, methods=["gradcam"], params={"gradcam": {"size": 3}})
    with pytest.raises(ValueError, match="unknown method"):
        explain(tiny_model, face, target, methods=["gradcam"], params={"gradcam++": {}})
    with pytest.raises(ValueError, match="unknown layer"):
        explain(tiny_model, face, target, methods=["gradcam"], params={"gradcam": {"layer": "x"}})
    with pytest.raises(ValueError, match="forward_maps"):
        explain(nn.Linear(3, 3), face, target, methods=["gradcam"])
    with pytest.raises(ValueError, match="smooth_samples"):
        explain(
            tiny_model,
            face,
            target,
            methods=["saliency"],
            params={"saliency": {"smooth_samples": -1}},
        )
    with pytest.raises(ValueError, match="fill"):
        explain(
            tiny_model, face, target, methods=["occlusion"], params={"occlusion": {"fill": "red"}}
        )


def test_black_means_zero_pixels_under_the_models_normalisation(face) -> None:
    from gmx.encode import GestaltModel, LoadedModel, default_card, preprocess

    backbone = tiny_iresnet(6)
    card = default_card(
        name="t",
        architecture="iresnet50",
        embedding_dim=64,
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.25, 0.3),
    )
    loaded = LoadedModel(model=GestaltModel(backbone), card=card, fingerprint="x")
    target = SimilarityTarget(gallery(64))
    fn = target.bind(0)
    x = preprocess(face[None], card)
    black = preprocess(np.zeros_like(face)[None], card)
    with torch.no_grad():
        delta = float(fn(backbone(x)) - fn(backbone(black)))
    for backend in ("engine", "reference"):
        maps = explain(
            loaded,
            face,
            target,
            methods=["occlusion", "deeplift", "integrated_gradients"],
            params={
                "occlusion": {"window": 112, "stride": 112, "precision": "fp32"},
                "integrated_gradients": {"steps": 16, "precision": "fp32"},
            },
            backend=backend,
        )
        np.testing.assert_allclose(maps["occlusion"].values, delta, rtol=1e-4)
        # 1e-5 relative, or the float32 rounding of the two scores behind delta (3e-7).
        assert maps["deeplift"].values.sum(dtype=np.float64) == pytest.approx(
            delta, rel=1e-5, abs=3e-7
        )
        assert maps["integrated_gradients"].values.sum(dtype=np.float64) == pytest.approx(
            delta, rel=0.05
        )


def test_iter_explain_validates_before_iterating(tiny_model, face) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        iter_explain(tiny_model, face, [SimilarityTarget(gallery(64))], methods=["nope"])
    with pytest.raises(ValueError, match="uint8"):
        iter_explain(tiny_model, face.astype(float), [SimilarityTarget(gallery(64))])


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("occlusion", {"window": 16, "stride": 8, "batch_size": 4}),
        ("integrated_gradients", {"steps": 16, "batch_size": 2}),
    ],
)
def test_a_slow_method_stops_between_its_batches(tiny_model, face, method, params) -> None:
    """Cancel (the app's button) stops occlusion / IG mid-method, at the next batch boundary."""
    calls: list[tuple[int, int]] = []
    stop = threading.Event()

    def on_progress(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 2:
            stop.set()

    with pytest.raises(ExplanationCancelled) as info:
        explain_targets(
            tiny_model,
            face,
            [SimilarityTarget(gallery(64))],
            methods=(method,),
            params={method: params},
            progress=on_progress,
            should_stop=stop.is_set,
        )
    total = calls[0][1]
    assert total > 2  # several batches, so stopping after the second is mid-method
    assert len(calls) == 2 and calls[-1][0] < total  # no batch ran after the stop
    assert info.value.completed == ({},)  # nothing half-done is returned as a map
