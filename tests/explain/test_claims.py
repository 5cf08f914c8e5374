"""Method definitions as documented: thesis panel, DeepLIFT completeness, FullGrad's rescaling, the
PReLU rules, re-ranked occlusion, and the docs' statements about which maps are linear in the target.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gmx.explain import (
    THESIS_PANEL,
    ContrastTarget,
    LogitTarget,
    SimilarityTarget,
    explain,
    face_tensor,
    get_method,
    list_methods,
    variant_input,
)
from gmx.explain.occlusion import window_starts
from gmx.explain.prepared import engine_model
from gmx.explain.targets import Target
from gmx.explain.workspace import Progress, Workspace
from gmx.variants import Variant

from .helpers import gallery, tiny_iresnet

DOCS = Path(__file__).resolve().parents[2] / "docs" / "explain.md"

# -- thesis panel ---------------------------------------------------------------------------------


def test_thesis_panel_shows_the_unfiltered_layer_maps(tiny_model, face) -> None:
    # Thesis 3.3.1: "this work uses unfiltered heat maps"; HiResCAM (3.3.2) is the same map without
    # the gradient averaging.
    assert "gradcam_signed" in THESIS_PANEL and "hirescam_signed" in THESIS_PANEL
    assert "gradcam" not in THESIS_PANEL and "hirescam" not in THESIS_PANEL
    assert len(THESIS_PANEL) == 9
    cams = [m for m in THESIS_PANEL if m.startswith(("gradcam", "hirescam"))]
    for name in cams:
        spec = get_method(name)
        assert spec.is_signed(spec.resolve()), name
    target = SimilarityTarget(gallery(64, seed=2))
    maps = explain(
        tiny_model,
        face,
        target,
        methods=["hirescam_signed", "hirescam"],
        params={"hirescam": {"relu": False}},
    )
    np.testing.assert_array_equal(maps["hirescam_signed"].raw, maps["hirescam"].raw)
    assert (maps["hirescam_signed"].raw < 0).any()  # negative evidence is kept


# -- DeepLIFT: a hybrid whose completeness is exact -------------------------------------------------


def test_deeplift_is_named_a_hybrid() -> None:
    spec = get_method("deeplift")
    assert "hybrid" in spec.display_name.lower()
    assert "Sundararajan" in spec.citation  # the head is integrated as in IG


@pytest.mark.parametrize("kind", ["similarity", "contrast", "tta"])
def test_deeplift_completeness_to_float_rounding(real_face, kind: str) -> None:
    model = tiny_iresnet(7)
    a, b = (
        SimilarityTarget(gallery(64, rows=2, seed=1)),
        SimilarityTarget(gallery(64, rows=2, seed=2)),
    )
    target = ContrastTarget(a, b) if kind == "contrast" else a
    variants = (Variant(0), Variant(0, flip=True)) if kind == "tta" else (Variant(0),)
    amap = explain(model, real_face, target, variants, methods=["deeplift"])["deeplift"]
    deltas = []
    for vi, v in enumerate(variants):
        x = variant_input(real_face, v)
        fn = target.bind(vi)
        with torch.no_grad():
            deltas.append(float(fn(model(x)) - fn(model(torch.full_like(x, -1.0)))))
    delta = float(np.mean(deltas))
    # 1e-5 relative, or the float32 rounding of the scores behind delta (3e-7); the old test
    # allowed 1 %.
    assert abs(float(amap.raw.sum(dtype=np.float64)) - delta) <= 1e-5 * abs(delta) + 3e-7


# -- FullGrad: per-layer rescaling, hand-computed ------------------------------------------------


class _ToyBackbone(nn.Module):
    """``forward_maps`` = one 1x1 conv with bias; ``head`` = flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])[..., None, None]
            )
            self.conv.bias.copy_(torch.tensor([0.5, -4.0]))

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(1)


def _fullgrad_toy(rescale: str) -> tuple[np.ndarray, np.ndarray]:
    """(engine map, hand-computed map) of the logit ``w . conv(x)`` on a 3x2x2 input."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 3, 2, 2)).astype(np.float32)
    w = rng.uniform(-1, 1, (2, 2, 2)).astype(np.float32)  # logit weights on the (2, 2, 2) maps
    backbone = _ToyBackbone()
    classifier = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(w.reshape(1, 8)))
    emodel = engine_model(backbone, classifier)
    ws = Workspace(
        emodel,
        torch.from_numpy(x),
        [LogitTarget(0).bind(0, emodel.classifier)],
        Progress(1, None, None, RuntimeError),
    )
    spec = get_method("fullgrad")
    params = spec.resolve({"rescale": rescale})
    spec.plan(ws, params)
    engine = spec.compute(ws, params)[0].numpy()

    # By hand: d logit / d conv output = w; d logit / d x_i = sum_c W[c, i] w_c.
    W = backbone.conv.weight.detach().numpy()[:, :, 0, 0]  # (2, 3)
    b = backbone.conv.bias.detach().numpy()
    grad_x = np.einsum("ci,chw->ihw", W, w)
    input_term = np.abs(x[0] * grad_x)  # (3, 2, 2)
    bias_term = np.abs(b[:, None, None] * w)  # (2, 2, 2)

    def psi(v: np.ndarray) -> np.ndarray:
        if rescale == "layer":  # over the whole layer (channels and space)
            v = v - v.min()
            return v / (1e-6 + v.max())
        v = v - v.min(axis=(1, 2), keepdims=True)  # per channel
        return v / (1e-7 + v.max(axis=(1, 2), keepdims=True))

    hand = psi(input_term).sum(0) + psi(bias_term).sum(0)
    return engine, hand


@pytest.mark.parametrize("rescale", ["layer", "channel"])
def test_fullgrad_rescaling_matches_hand_computation(rescale: str) -> None:
    engine, hand = _fullgrad_toy(rescale)
    np.testing.assert_allclose(engine, hand, rtol=1e-5, atol=1e-6)


def test_fullgrad_defaults_to_the_reference_codes_per_layer_rescaling() -> None:
    assert get_method("fullgrad").defaults["rescale"] == "layer"
    layer, _ = _fullgrad_toy("layer")
    channel, _ = _fullgrad_toy("channel")
    assert not np.allclose(layer, channel)  # the choice matters on this input


def _scaled(model: nn.Module, s: float) -> nn.Module:
    """A copy with every (explicit or BatchNorm-implicit) bias multiplied by ``s``."""
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for m in clone.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.bias is not None:
                    m.bias.mul_(s)
                m.running_mean.mul_(s)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.mul_(s)
    return clone


def test_fullgrad_completeness_is_vacuous_for_a_cosine_target(tiny_model, face) -> None:
    # The embedding is positively homogeneous in (input, all biases) and the cosine is
    # scale-invariant, so by Euler's theorem the full-gradient sum x.grad_x + sum b.grad_b (the
    # derivative along s of f(s x, s b) at s = 1) is 0, not f(x): FullGrad's completeness says
    # nothing about a similarity target (docs/explain.md).
    fn = SimilarityTarget(gallery(64, seed=3)).bind(0)
    x = face_tensor(face)
    with torch.no_grad():
        e = tiny_model(x)
        e_scaled = _scaled(tiny_model, 1.01)(1.01 * x)
        torch.testing.assert_close(e_scaled, 1.01 * e, rtol=1e-4, atol=1e-5)
        f, f_scaled = float(fn(e)), float(fn(e_scaled))
    assert abs(f) > 1e-2 and abs(f_scaled - f) < 1e-5


# -- re-ranked occlusion -----------------------------------------------------------------------------


def _brute_force_reranked(model, face, syndrome, variants, window: int, stride: int):
    """Occlude the uint8 face with black, encode every variant, score = max_g mean_v cos."""

    def score(img: np.ndarray) -> tuple[float, int]:
        sims = []
        with torch.no_grad():
            for vi, v in enumerate(variants):
                e = model(variant_input(img, v))
                g = torch.from_numpy(syndrome[:, vi])
                sims.append(F.cosine_similarity(e, g, dim=1))
        mean = torch.stack(sims).mean(0)
        return float(mean.max()), int(mean.argmax())

    clean, nearest = score(face)
    total = np.zeros((112, 112))
    count = np.zeros((112, 112))
    changed = 0
    starts = window_starts(112, window, stride)  # captum's grid (tested in test_occlusion.py)
    boxes = [(y, min(y + window, 112), x, min(x + window, 112)) for y in starts for x in starts]
    for y0, y1, x0, x1 in boxes:
        occ = face.copy()
        occ[y0:y1, x0:x1] = 0  # black: -1 in model units
        s, g = score(occ)
        changed += g != nearest
        total[y0:y1, x0:x1] += clean - s
        count[y0:y1, x0:x1] += 1
    return total / count, nearest, changed


@pytest.mark.parametrize("incremental", [True, False])
def test_reranked_occlusion_equals_brute_force(tiny_model, face, incremental: bool) -> None:
    variants = (Variant(0), Variant(0, flip=True), Variant(0, grey=True))
    with torch.no_grad():
        e = torch.cat([tiny_model(variant_input(face, v)) for v in variants]).numpy()
    # Four images near the face, so that occlusion changes which one is nearest.
    noise = np.random.default_rng(4).standard_normal((4, 3, 64))
    syndrome = (e[None] + 0.5 * np.abs(e).mean() * noise).astype(np.float32)
    expected, nearest, changed = _brute_force_reranked(tiny_model, face, syndrome, variants, 28, 14)
    assert changed > 0  # the nearest image does change under some windows: the case that matters
    target = SimilarityTarget(syndrome[nearest], "s", syndrome_embeddings=syndrome)
    params = {"window": 28, "stride": 14, "precision": "fp32", "incremental": incremental}
    calls: list[tuple[int, int]] = []
    maps = explain(
        tiny_model,
        face,
        target,
        variants,
        methods=["occlusion"],
        params={"occlusion": {**params, "rerank": True, "batch_size": 16}},
        progress=lambda done, total: calls.append((done, total)),
    )
    np.testing.assert_allclose(maps["occlusion"].values, expected, rtol=0, atol=2e-5)
    assert calls[-1] == (12, 12)  # ceil(49 / 16) batches x 3 variants
    fixed = explain(
        tiny_model, face, target, variants, methods=["occlusion"], params={"occlusion": params}
    )["occlusion"]
    assert np.abs(fixed.values - expected).max() > 1e-3  # fixed g* is another quantity


def test_reranked_occlusion_of_one_variant_without_a_syndrome_is_plain_occlusion(
    tiny_model, face
) -> None:
    target = SimilarityTarget(gallery(64, seed=5))
    params = {"window": 16, "stride": 8, "precision": "fp32"}
    plain, joint = (
        explain(
            tiny_model,
            face,
            target,
            methods=["occlusion"],
            params={"occlusion": {**params, "rerank": rerank}},
        )["occlusion"]
        for rerank in (False, True)
    )
    np.testing.assert_allclose(joint.values, plain.values, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="couples the variants"):
        explain(
            tiny_model,
            face,
            target,
            methods=["occlusion"],
            params={"occlusion": {"rerank": True}},
            backend="reference",
        )


def test_ranking_score_is_the_reranked_syndrome_score() -> None:
    syndrome = np.random.default_rng(1).standard_normal((5, 2, 8)).astype(np.float32)
    target = SimilarityTarget(syndrome[0], syndrome_embeddings=syndrome)
    e = [torch.randn(3, 8), torch.randn(3, 8)]
    sims = np.stack(
        [
            np.stack([F.cosine_similarity(e[v], torch.from_numpy(syndrome[g, v])[None], dim=1).numpy()
                      for v in range(2)]).mean(0)
            for g in range(5)
        ]
    )  # (G, N)  # fmt: skip
    np.testing.assert_allclose(target.ranking_score(e).numpy(), sims.max(0), rtol=1e-6)
    plain = SimilarityTarget(syndrome[0])
    np.testing.assert_allclose(plain.ranking_score(e).numpy(), sims[0], rtol=1e-6)
    with pytest.raises(ValueError, match="syndrome_embeddings"):
        SimilarityTarget(syndrome[0], syndrome_embeddings=syndrome[:, :1])


# -- the docs' claims ----------------------------------------------------------------------------------


def _documented(label: str) -> set[str]:
    """Backticked method names of the docs bullet that starts with ``label``."""
    text = DOCS.read_text()
    match = re.search(rf"^\* \*\*{re.escape(label)}\*\*(.*?)(?=^\* |^#|\Z)", text, re.M | re.S)
    assert match, f"docs/explain.md has no bullet {label!r}"
    return {n for n in re.findall(r"`([a-z_]+)`", match.group(1)) if n in list_methods()}


class _TwoModels(nn.Module):
    """Two backbones on one input as one network: maps stacked along channels, embeddings
    concatenated (a model ensemble whose mean score is a single function of the face)."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a.forward_maps(x), self.b.forward_maps(x)], dim=1)

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        c = maps.shape[1] // 2
        return torch.cat([self.a.head(maps[:, :c]), self.b.head(maps[:, c:])], dim=1)


class _MeanSimilarity(Target):
    """The mean over the two halves of the embedding of the cosine to each half's gallery row."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = torch.from_numpy(rows)

    @property
    def description(self) -> str:
        return "mean similarity"

    def bind(self, variant: int, classifier: nn.Module | None = None):
        def score(e: torch.Tensor) -> torch.Tensor:
            d = e.shape[1] // 2
            sims = [F.cosine_similarity(e[:, i * d : (i + 1) * d], self.rows[i][None], dim=1)
                    for i in range(2)]  # fmt: skip
            return (sims[0] + sims[1]) / 2

        return score


def test_docs_state_when_the_variant_average_is_the_attribution_of_the_mean_score(
    face, monkeypatch
) -> None:
    # The engine averages per-variant maps; the attribution of the mean score is computed here on
    # one network that holds both variants (two models on one input, so no mirroring is involved).
    # A property of the methods, compared at cell level: every network gets one fixed cell grid so
    # the two models' maps share a frame and ``raw`` stays at native resolution.
    from gmx.encode.geometry import stride_grid
    from gmx.explain import engine

    monkeypatch.setattr(engine, "cell_grid", lambda _backbone, shape: stride_grid(shape))
    a, b = tiny_iresnet(11), tiny_iresnet(12)
    rows = gallery(64, rows=2, seed=9)
    names = [n for n in list_methods() if get_method(n).family != "baseline"]
    params = {
        "occlusion": {"window": 28, "stride": 28, "precision": "fp32"},
        "integrated_gradients": {"steps": 8, "precision": "fp32"},
    }
    averaged = explain(
        [a, b], face, SimilarityTarget(rows), (Variant(0), Variant(1)), methods=names, params=params
    )
    joint = explain(_TwoModels(a, b), face, _MeanSimilarity(rows), methods=names, params=params)
    holds = set()
    for n in names:
        scale = np.abs(joint[n].raw).max()
        if np.allclose(averaged[n].raw, joint[n].raw, rtol=0, atol=1e-4 * scale):
            holds.add(n)
    assert _documented("The variant average is the attribution of the mean score") == holds
    assert _documented("The variant average is not the attribution of the mean score") == (
        set(names) - holds
    )
    assert {"saliency", "fullgrad"}.isdisjoint(holds)
    assert {"guided_backprop", "deconvolution", "deeplift"} <= holds
