"""Closed-form pair CAMs equal gmx.explain's back-propagated ones; their relation to the exact map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.similarity import (
    AffineHead,
    PairExplainer,
    QueryActivations,
    cam_from_activations,
    cams_by_variant,
    decompose_pairs,
    place_values,
)
from gmx.variants import Variant


@pytest.mark.parametrize("kind", ["hirescam", "gradcam"])
def test_closed_form_equals_gmx_explain_on_both_sides(flip_setup, kind):
    ens, gallery, face = flip_setup.ensemble, flip_setup.gallery, flip_setup.face
    explainer = PairExplainer(ens, gallery)
    q = explainer.query(face)
    idx = [0, 3]
    pairs = explainer.explain(face, idx, method=kind, query=q)
    assert all(p.backend == "explain" for p in pairs)
    g_cam = cams_by_variant(
        explainer.store.maps(idx),
        np.broadcast_to(q.embeddings, (2, *q.embeddings.shape)),
        explainer.variant_heads,
        ens.variants,
        kind=kind,
    )
    q_cam = cams_by_variant(
        q.maps, gallery.embeddings[idx], explainer.variant_heads, ens.variants, kind=kind
    )
    # plain + flipped variants: compared at pixel level, each variant placed on its own grid
    grids = explainer.variant_grids()
    g_pix, q_pix = place_values(g_cam, grids), place_values(q_cam, grids)
    for j, p in enumerate(pairs):
        assert p.gallery_raw.shape == (112, 112)  # no single cell grid holds plain and flipped
        scale = np.abs(p.gallery).max()
        np.testing.assert_allclose(g_pix[j], p.gallery, atol=1e-4 * scale)
        np.testing.assert_allclose(q_pix[j], p.query, atol=1e-4 * np.abs(p.query).max())


def test_closed_form_equals_gmx_explain_with_grey_variants_too(tta_setup):
    """gmx.explain feeds the encoder's own preprocessing (OpenCV-exact grey) to every variant."""
    ens, gallery, face = tta_setup.ensemble, tta_setup.gallery, tta_setup.face
    explainer = PairExplainer(ens, gallery)
    q = explainer.query(face)
    pair = explainer.explain(face, [1], method="hirescam", query=q)[0]
    q_cam = cams_by_variant(q.maps, gallery.embeddings[[1]], explainer.variant_heads, ens.variants)
    q_pix = place_values(q_cam, explainer.variant_grids())
    np.testing.assert_allclose(q_pix[0], pair.query, atol=1e-4 * np.abs(pair.query).max())


def test_hirescam_is_the_exact_map_minus_a_self_term():
    """H[g] = P[g] - s (u_g . e) / |e|^2, and sums to s (b . e)/|e|^2 - kappa (0 without bias)."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn((4, 3, 2), generator=gen)
    for bias in (torch.randn(3, generator=gen), torch.zeros(3)):
        head = AffineHead(weight, bias, (2, 2))
        mq = torch.randn((2, 2, 2), generator=gen).numpy()
        mp = torch.randn((1, 2, 2, 2), generator=gen).numpy()
        e_q = head(torch.from_numpy(mq)[None])[0].numpy()
        query = QueryActivations((mq,), e_q[None], (Variant(0),))
        d = decompose_pairs(query, [mp], [head])[0]
        h = cam_from_activations([mp], e_q[None, None], [head], [Variant(0)])[0]
        u = head.cell_terms(torch.from_numpy(mp))[0].double().numpy()  # (G, D)
        e = u.sum(0) + bias.double().numpy()
        s = d.cosine
        want = d.gallery_map().ravel() - s * (u @ e) / (e @ e)
        np.testing.assert_allclose(h.ravel(), want, atol=1e-6)
        assert h.sum() == pytest.approx(
            s * (bias.double().numpy() @ e) / (e @ e) - d.gallery_constant(), abs=1e-6
        )
        if not bias.any():
            assert abs(h.sum()) < 1e-6


def test_cam_argument_checks():
    head = AffineHead(torch.zeros(4, 3, 2), torch.zeros(3), (2, 2))
    with pytest.raises(ValueError, match="kind"):
        cam_from_activations(
            [np.zeros((2, 2, 2))], np.ones((1, 1, 3)), [head], [Variant(0)], kind="x"
        )
    with pytest.raises(ValueError, match="others"):
        cam_from_activations([np.zeros((2, 2, 2))], np.ones((1, 3)), [head], [Variant(0)])
