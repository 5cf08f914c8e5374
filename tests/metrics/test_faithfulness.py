"""Deletion/insertion curves: hand-computed values on a linear model, and the batched engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.explain import SimilarityTarget, variant_input
from gmx.explain.engine import variant_rows
from gmx.gallery import rank
from gmx.metrics import PerturbationCurve, faithfulness_curves, fill_image, perturbation_curve
from gmx.metrics.faithfulness import curve_auc, perturbed_images, step_counts

# A 1x4 one-channel "image" x = [4, 3, 2, 1]; the map orders pixels 1, 3, 2, 0 (most first).
X = np.array([[[4.0], [3.0], [2.0], [1.0]]])
A = np.array([[1.0, 4.0, 2.0, 3.0]])
ZERO = np.zeros_like(X)


def linear(images: np.ndarray) -> np.ndarray:
    """f(x) = sum of the pixels (so each pixel's exact contribution is its value)."""
    return images.reshape(len(images), -1).sum(axis=1)


@pytest.mark.parametrize(
    ("mode", "order", "scores", "auc"),
    [
        # Remove 3, then 1, then 2, then 4 -> 10, 7, 6, 4, 0; AUC = (8.5+6.5+5+2)/4 = 5.5.
        ("deletion", "most", [10, 7, 6, 4, 0], 5.5),
        ("insertion", "most", [0, 3, 4, 6, 10], 4.5),
        ("deletion", "least", [10, 6, 4, 3, 0], 4.5),
        ("insertion", "least", [0, 4, 6, 7, 10], 5.5),
    ],
)
def test_linear_curve_by_hand(mode, order, scores, auc) -> None:
    c = perturbation_curve(linear, X, A, mode=mode, order=order, fill=ZERO, steps=4)
    np.testing.assert_allclose(c.fractions, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(c.scores, scores)
    assert c.auc == pytest.approx(auc)
    assert c.fill == "custom" and c.mode == mode and c.order == order


def test_mean_fill_by_hand() -> None:
    # Mean fill 2.5 everywhere: deletion most-first 10 -> 10-3+2.5 = 9.5 -> 9.5-1+2.5 = 11 ...
    c = perturbation_curve(linear, X, A, mode="deletion", order="most", fill="mean", steps=4)
    np.testing.assert_allclose(c.scores, [10, 9.5, 11, 11.5, 10])
    np.testing.assert_array_equal(fill_image(X, "mean"), np.full_like(X, 2.5))


def test_blur_of_constant_is_constant_and_uint8_kept() -> None:
    img = np.full((8, 8, 3), 77, np.uint8)
    out = fill_image(img, "blur")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_step_counts_round() -> None:
    np.testing.assert_array_equal(step_counts(4, 3), [0, 1, 3, 4])  # 4/3, 8/3 rounded
    np.testing.assert_array_equal(step_counts(10, 2), [0, 5, 10])
    with pytest.raises(ValueError):
        step_counts(4, 0)


def test_ties_in_raster_order() -> None:
    imgs = perturbed_images(X, np.zeros((1, 4)), ZERO, mode="deletion", order="most", steps=4)
    np.testing.assert_array_equal(linear(imgs), [10, 6, 3, 1, 0])


def test_auc_trapezoid() -> None:
    assert curve_auc(np.array([0, 0.5, 1.0]), np.array([1.0, 0.0, 1.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        curve_auc(np.array([0.0]), np.array([1.0]))


def test_inputs_not_modified_and_results_frozen() -> None:
    x, a = X.copy(), A.copy()
    c = perturbation_curve(linear, x, a, mode="deletion", fill="blur", steps=2)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(a, A)
    assert not c.scores.flags.writeable
    with pytest.raises(AttributeError):
        c.mode = "insertion"  # type: ignore[misc]


def test_nan_map_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        perturbation_curve(linear, X, np.full((1, 4), np.nan), mode="deletion", fill=ZERO)


def _direct_scores(model, images: np.ndarray, target: SimilarityTarget, variants) -> np.ndarray:
    """The mean over variants of the cosine to the target, computed without gmx.metrics."""
    bb = model.model.backbone
    out = []
    with torch.no_grad():
        for v_i, v in enumerate(variants):
            e = bb(variant_rows(images, v, model.card))
            g = torch.from_numpy(target.gallery_embeddings[v_i].copy())[None]
            out.append(torch.nn.functional.cosine_similarity(e, g, dim=1).double().numpy())
    return np.mean(out, axis=0)


def test_batched_curves_equal_per_image_and_direct(tiny) -> None:
    g = tiny.gallery
    variants = list(g.variants)
    targets = [
        SimilarityTarget(g.embeddings[0]),
        SimilarityTarget(g.embeddings[3]),
        SimilarityTarget(g.embeddings[1]),
    ]
    rng = np.random.default_rng(1)
    maps = {"a": rng.standard_normal((3, 112, 112)).astype(np.float32),
            "b": rng.standard_normal((3, 112, 112)).astype(np.float32)}  # fmt: skip
    faces = tiny.faces.copy()
    maps_before = {k: v.copy() for k, v in maps.items()}
    kw = dict(modes=("deletion", "insertion"), orders=("most",), fills=("mean",), steps=3)
    batched = faithfulness_curves(
        tiny.model, faces, maps, targets, variants, gallery=g, syndromes=tiny.labels,
        batch_size=64, **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(faces, tiny.faces)
    for k in maps:
        np.testing.assert_array_equal(maps[k], maps_before[k])
    assert len(batched) == 3 * 2 * 2
    assert all(isinstance(c, PerturbationCurve) for c in batched)
    for c in batched:
        # One face at a time, one curve at a time, batch of 1: the same numbers.
        single = faithfulness_curves(
            tiny.model, faces[c.face : c.face + 1], {c.method: maps[c.method][c.face : c.face + 1]},
            [targets[c.face]], variants, gallery=g, syndromes=[tiny.labels[c.face]],
            modes=(c.mode,), orders=(c.order,), fills=(c.fill,), steps=3, batch_size=1,
        )[0]  # fmt: skip
        np.testing.assert_allclose(single.scores, c.scores, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(single.ranks, c.ranks)
        # And what the model says directly about the same perturbed faces.
        imgs = perturbed_images(
            faces[c.face], maps[c.method][c.face], fill_image(faces[c.face], "mean"),
            mode=c.mode, order=c.order, steps=3,
        )  # fmt: skip
        np.testing.assert_allclose(
            c.scores, _direct_scores(tiny.model, imgs, targets[c.face], variants), atol=1e-5
        )
        emb = np.stack([
            torch.cat([tiny.model.model.backbone(variant_input(im, v, tiny.model.card)) for v in variants]).detach().numpy()
            for im in imgs
        ])  # fmt: skip
        expect = [rank(e, g).syndrome(tiny.labels[c.face]).rank for e in emb]
        np.testing.assert_array_equal(c.ranks, expect)
    # Deletion starts and insertion ends at the clean face.
    dele = [c for c in batched if c.mode == "deletion" and c.face == 0]
    ins = [c for c in batched if c.mode == "insertion" and c.face == 0]
    assert dele[0].scores[0] == pytest.approx(ins[0].scores[-1], abs=1e-6)


def test_rerank_needs_every_gallery_variant(tiny) -> None:
    g = tiny.gallery
    with pytest.raises(ValueError, match="gallery variant"):
        faithfulness_curves(
            tiny.model, tiny.faces[:1], {"a": np.zeros((1, 112, 112))},
            [SimilarityTarget(g.embeddings[0][:1])], [g.variants[0]], gallery=g, syndromes=["S:1"],
        )  # fmt: skip


def test_clean_and_fill_faces_scored_once_per_face(tiny, monkeypatch) -> None:
    from gmx.metrics import faithfulness as fm

    seen: list[int] = []
    real = fm.BatchScorer.__call__

    def counting(self, faces, owners):
        seen.append(len(faces))
        return real(self, faces, owners)

    monkeypatch.setattr(fm.BatchScorer, "__call__", counting)
    g = tiny.gallery
    rng = np.random.default_rng(2)
    maps = {m: rng.standard_normal((1, 112, 112)) for m in ("a", "b")}
    curves = faithfulness_curves(
        tiny.model, tiny.faces[:1], maps, [SimilarityTarget(g.embeddings[0])], list(g.variants),
        fills=("mean",), steps=3, batch_size=5,
    )  # fmt: skip
    # 2 methods x 2 modes x 2 orders = 8 curves of 4 points: 16 interior points, plus the clean face
    # and the mean-filled face once each.
    assert len(curves) == 8 and sum(seen) == 18
    clean = {c.scores[0] if c.mode == "deletion" else c.scores[-1] for c in curves}
    filled = {c.scores[-1] if c.mode == "deletion" else c.scores[0] for c in curves}
    assert len(clean) == 1 and len(filled) == 1


def test_training_mode_model_rejected(tiny) -> None:
    from tests.explain.helpers import tiny_iresnet

    model = tiny_iresnet(0).train()
    with pytest.raises(ValueError, match="eval mode"):
        faithfulness_curves(
            model, tiny.faces[:1], {"a": np.zeros((1, 112, 112))}, [SimilarityTarget(np.ones(64))]
        )
