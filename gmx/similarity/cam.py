"""Grad-CAM and HiResCAM of a pair similarity, in closed form from the feature maps.

Because the head is affine (:mod:`gmx.similarity.head`), the gradient of ``s = cos(e, e_o)`` (``e`` the
explained face's embedding, ``e_o`` the other face's) with respect to the explained face's map at cell
``g`` is ``A_gᵀ γ`` with ``γ = e_o / (|e| |e_o|) - s e / |e|²``. Hence, per variant:

* HiResCAM (Draelos & Carin, arXiv:2011.08891), signed: ``H[g] = Σ_ch grad[ch, g] m[ch, g] = u_g · γ``
  with ``u_g = A_g m_g``;
* Grad-CAM (Selvaraju et al., ICCV 2017), signed: ``Σ_ch mean_g'(grad[ch, g']) m[ch, g]``.

These equal what :mod:`gmx.explain` computes by back-propagation at its ``"maps"`` layer
(``hirescam`` with ``relu=False`` and ``gradcam_signed``; tested), without a backward pass and
without pixels: they serve the gallery side when a gallery keeps feature maps but no photos.
Flipped variants are mirrored back and variants averaged, as everywhere.

Relation to the exact decomposition: ``H[g] = P[g] - s (u_g · e) / |e|²`` where ``P`` is the
complete-split exact map. Since ``Σ_g u_g = e - b``, ``Σ_g H[g] = s (b · e) / |e|² - κ``: with a
bias-free head the HiResCAM of a cosine sums to zero (the cosine is scale invariant, so gradient x
activation cancels), whereas the exact map sums to the cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from gmx.similarity.decompose import mirror_permutation
from gmx.similarity.head import AffineHead
from gmx.variants import Variant

CamKind = Literal["hirescam", "gradcam"]


def _cam_variant(
    maps: torch.Tensor, head: AffineHead, others: torch.Tensor, kind: CamKind
) -> torch.Tensor:
    """``(K, G)`` float64 CAM of ``maps`` (``(1 or K, C, h, w)``) against ``others`` ``(K, D)``."""
    k = others.shape[0]
    u = head.cell_terms(maps).double()  # (1|K, G, D)
    if u.shape[0] == 1 and k > 1:
        u = u.expand(k, -1, -1)
    e = u.sum(1) + head.bias.double()  # (K, D)
    o = others.double()
    ne = torch.linalg.vector_norm(e, dim=1)
    no = torch.linalg.vector_norm(o, dim=1)
    s = (e * o).sum(1) / (ne * no)
    gamma = o / (ne * no)[:, None] - (s / ne**2)[:, None] * e  # (K, D)
    if kind == "hirescam":
        return torch.einsum("kgd,kd->kg", u, gamma)
    # Grad-CAM: channel weights = spatial mean of the map gradient A_gᵀ γ.
    a = head.weight.double()  # (G, D, C)
    weights = torch.einsum("gdc,kd->kc", a, gamma) / a.shape[0]  # (K, C)
    m = maps.double().reshape(maps.shape[0], head.channels, head.cells)  # (1|K, C, G)
    return torch.einsum("kc,kcg->kg", weights, m.expand(k, -1, -1))


def cams_by_variant(
    maps: Sequence[np.ndarray],
    others: np.ndarray,
    heads: Sequence[AffineHead],
    variants: Sequence[Variant],
    *,
    kind: CamKind = "hirescam",
) -> np.ndarray:
    """Signed CAMs of one side of K pairs, per variant, cells in the displayed face's order.

    Args:
        maps: per variant, ``(C, h, w)`` (one face explained against K others) or ``(K, C, h, w)``
            (K faces, each against its own other) float maps. Not modified.
        others: ``(K, V, D)`` float embeddings of the other face of each pair, one per variant.
        heads: per variant, the folded head of its model.
        variants: the V variants (flipped ones are column-reversed into the displayed order; place
            them on the mirrored grid, :meth:`gmx.encode.geometry.CellGrid.mirrored`).
        kind: ``"hirescam"`` or ``"gradcam"`` (both without ReLU).

    Returns:
        ``(V, K, h, w)`` float64.
    """
    if kind not in ("hirescam", "gradcam"):
        raise ValueError(f"kind must be 'hirescam' or 'gradcam', got {kind!r}")
    others = np.asarray(others)
    if others.ndim != 3 or others.shape[1] != len(variants):
        raise ValueError(f"others must be (K, V={len(variants)}, D), got {others.shape}")
    if len(maps) != len(variants) or len(heads) != len(variants):
        raise ValueError(f"need maps and heads for each of {len(variants)} variants")
    k = others.shape[0]
    grid = heads[0].grid
    perm = mirror_permutation(grid)
    out = np.zeros((len(variants), k, grid[0] * grid[1]))
    with torch.inference_mode():
        for v, variant in enumerate(variants):
            m = np.asarray(maps[v], dtype=np.float32)
            if m.ndim == 3:
                m = m[None]
            if m.shape[0] not in (1, k):
                raise ValueError(f"variant {v}: maps for {m.shape[0]} faces, others for {k}")
            cam = _cam_variant(
                torch.from_numpy(np.array(m, dtype=np.float32)),
                heads[v],
                torch.from_numpy(np.array(others[:, v], dtype=np.float32)),
                kind,
            ).numpy()
            out[v] = cam[:, perm] if variant.flip else cam
    return out.reshape(len(variants), k, *grid)


def cam_from_activations(
    maps: Sequence[np.ndarray],
    others: np.ndarray,
    heads: Sequence[AffineHead],
    variants: Sequence[Variant],
    *,
    kind: CamKind = "hirescam",
) -> np.ndarray:
    """:func:`cams_by_variant` averaged over variants at cell level: ``(K, h, w)`` float64.

    With flipped variants this averages cells that sit about one cell apart on the face
    (``docs/similarity.md``, "Geometry"); place :func:`cams_by_variant` per variant instead.
    """
    return cams_by_variant(maps, others, heads, variants, kind=kind).mean(axis=0)


__all__ = ["CamKind", "cam_from_activations", "cams_by_variant"]
