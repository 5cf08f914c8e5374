"""Exact decomposition of a query/gallery cosine into 7x7 cells on each face.

For one model/TTA variant, with the folded head ``e = Σ_g A_g m_g + b`` (:mod:`gmx.similarity.head`),
write ``u_g = A_g m_{q,g}`` for the query's cells, ``v_h = A_h m_{p,h}`` for the gallery image's and
``n = |e_q| |e_p|``. Then, exactly::

    cos(e_q, e_p) = Σ_{g,h} K[g, h] + Σ_g r_q[g] + Σ_h r_p[h] + β,
    K[g, h] = u_g · v_h / n        (query cell g with gallery cell h: the correspondence),
    r_q[g]  = u_g · b / n          (query cell g with the gallery's bias),
    r_p[h]  = b · v_h / n          (the query's bias with gallery cell h),
    β       = b · b / n            (bias with bias).

Split conventions (:data:`SPLITS`) turn this into one map per face:

* ``"complete"`` (default): each map alone is complete. Query map ``Q[g] = Σ_h K[g, h] + r_q[g] =
  u_g · e_p / n`` with constant ``κ_q = Σ_h r_p[h] + β = b · e_p / n``; gallery map ``P[h] = Σ_g K[g, h]
  + r_p[h] = e_q · v_h / n`` with ``κ_p = b · e_q / n``. ``Σ Q + κ_q = Σ P + κ_p = cos``.
* ``"shared"``: the two maps share one cosine. Each cell-to-cell term is split half and half,
  each cell-with-bias term goes to its cell: ``Q[g] = ½ Σ_h K[g, h] + r_q[g]``, ``P[h] = ½ Σ_g K[g, h]
  + r_p[h]``, constant ``β``; ``Σ Q + Σ P + β = cos``.

Ensembles: GestaltMatcher-Arc's similarity is the mean over variants of the per-variant cosines, so
every term above is averaged over variants. A flipped variant encodes the mirrored face; its cell
``(row, col)`` is listed as the displayed face's cell ``(row, w - 1 - col)`` (its ``K`` is mirrored on
both axes, the gallery embedding of that variant being of the mirrored gallery photo too, and its
vectors on their one axis) before averaging. Mirroring is a permutation of cells, so completeness
holds whatever the geometry. Cells are not 16x16 blocks: cell ``j`` of the plain face is centred
near pixel ``16 j`` (measured per backbone, :func:`gmx.encode.geometry.cell_grid`), and the mirrored
cell of a flipped variant near ``111 - 16 (w - 1 - j)``, about 15 px to the right; averaging the two
at cell level blends locations that far apart (``docs/similarity.md``, "Geometry"). The per-variant
maps (:attr:`PairDecomposition.per_variant_query`) are kept so that each can be placed on its own
grid (:meth:`gmx.encode.geometry.CellGrid.mirrored` for flipped variants).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from gmx.similarity.activations import QueryActivations
from gmx.similarity.head import AffineHead
from gmx.variants import Variant

Split = Literal["complete", "shared"]

#: Split conventions of the cell terms between the two faces (see the module docstring).
SPLITS: tuple[str, ...] = ("complete", "shared")


def mirror_permutation(grid: tuple[int, int]) -> np.ndarray:
    """``(G,)`` int64: cell ``g = row * w + col`` of a mirrored map is cell ``perm[g]`` of the face."""
    h, w = grid
    rows, cols = np.divmod(np.arange(h * w), w)
    return (rows * w + (w - 1 - cols)).astype(np.int64)


def cell_label(cell: int, grid: tuple[int, int] = (7, 7)) -> str:
    """Human label of a cell, e.g. ``r3 c5`` (row from the top, column from the image's left, 1-based)."""
    h, w = grid
    if not 0 <= cell < h * w:
        raise ValueError(f"cell {cell} out of range for a {h}x{w} grid")
    r, c = divmod(cell, w)
    return f"r{r + 1} c{c + 1}"


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PairDecomposition:
    """The exact cell decomposition of one query/gallery-image similarity (averaged over variants).

    Cells ``g = row * w + col`` are in the frame of the displayed (unflipped) faces.

    Attributes:
        image_index: the gallery image.
        correspondence: ``(G, G)`` float64 ``K[g, h]``, query cell ``g`` (rows) with gallery cell ``h``
            (columns).
        query_bias: ``(G,)`` float64 ``r_q``, query cells with the gallery's bias.
        gallery_bias: ``(G,)`` float64 ``r_p``, gallery cells with the query's bias.
        bias_bias: ``β``, the two biases together.
        cosine: the decomposed similarity, the mean over variants of ``cos(e_q, e_p)``
            (``1 - `` the ranking's mean distance, up to float rounding).
        per_variant_cosine: ``(V,)`` float64, one cosine per averaged variant.
        per_variant_query: ``(V, h, w)`` float64, each variant's complete-split query map (mirrored
            back for flipped variants); their mean is :meth:`query_map`.
        per_variant_gallery: ``(V, h, w)`` float64, the same for the gallery map.
        grid: ``(h, w)``.
        variants: the averaged variants.
        per_variant_correspondence: ``(V, G, G)`` float64, each variant's ``K`` (cells in the
            displayed order, as :attr:`correspondence`); their mean is :attr:`correspondence`.
        per_variant_query_bias: ``(V, G)`` float64, each variant's ``r_q``.
        per_variant_gallery_bias: ``(V, G)`` float64, each variant's ``r_p``.
    """

    image_index: int
    correspondence: np.ndarray
    query_bias: np.ndarray
    gallery_bias: np.ndarray
    bias_bias: float
    cosine: float
    per_variant_cosine: np.ndarray
    per_variant_query: np.ndarray
    per_variant_gallery: np.ndarray
    grid: tuple[int, int]
    variants: tuple[Variant, ...]
    per_variant_correspondence: np.ndarray
    per_variant_query_bias: np.ndarray
    per_variant_gallery_bias: np.ndarray

    @property
    def cells(self) -> int:
        """``G``."""
        return self.grid[0] * self.grid[1]

    def query_map(self, split: Split = "complete") -> np.ndarray:
        """``(h, w)`` float64 query map: which query cells make the query similar to the image."""
        rows = self.correspondence.sum(axis=1)
        return self._map(rows, self.query_bias, split)

    def gallery_map(self, split: Split = "complete") -> np.ndarray:
        """``(h, w)`` float64 gallery map: which cells of the image make it similar to the query."""
        cols = self.correspondence.sum(axis=0)
        return self._map(cols, self.gallery_bias, split)

    def variant_query_maps(self, split: Split = "complete") -> np.ndarray:
        """``(V, h, w)`` float64: each variant's query map; their mean is :meth:`query_map`.

        Cells are in the displayed order, so a flipped variant's map is column-reversed from its
        own frame: place it on the mirrored grid (:meth:`gmx.encode.geometry.CellGrid.mirrored`).
        """
        rows = self.per_variant_correspondence.sum(axis=2)
        return np.stack(
            [self._map(r, b, split) for r, b in zip(rows, self.per_variant_query_bias, strict=True)]
        )

    def variant_gallery_maps(self, split: Split = "complete") -> np.ndarray:
        """``(V, h, w)`` float64: each variant's gallery map; their mean is :meth:`gallery_map`."""
        cols = self.per_variant_correspondence.sum(axis=1)
        return np.stack(
            [
                self._map(c, b, split)
                for c, b in zip(cols, self.per_variant_gallery_bias, strict=True)
            ]
        )

    def query_constant(self, split: Split = "complete") -> float:
        """What :meth:`query_map` leaves out: ``cos - query_map(split).sum()`` for ``complete``."""
        _check_split(split)
        if split == "complete":
            return float(self.gallery_bias.sum() + self.bias_bias)
        return float(self.bias_bias)

    def gallery_constant(self, split: Split = "complete") -> float:
        """What :meth:`gallery_map` leaves out (``β`` for ``shared``, shared with the query map)."""
        _check_split(split)
        if split == "complete":
            return float(self.query_bias.sum() + self.bias_bias)
        return float(self.bias_bias)

    def matches(self, query_cell: int) -> np.ndarray:
        """``(h, w)`` float64 row ``K[query_cell, :]``: where on the gallery face a query cell matches."""
        self._check_cell(query_cell)
        return self.correspondence[query_cell].reshape(self.grid).copy()

    def matched_by(self, gallery_cell: int) -> np.ndarray:
        """``(h, w)`` float64 column ``K[:, gallery_cell]``: which query cells match a gallery cell."""
        self._check_cell(gallery_cell)
        return self.correspondence[:, gallery_cell].reshape(self.grid).copy()

    def _check_cell(self, cell: int) -> None:
        if (
            isinstance(cell, bool)
            or not isinstance(cell, int | np.integer)
            or not 0 <= cell < self.cells
        ):
            raise ValueError(f"cell must be an int in [0, {self.cells}), got {cell!r}")

    def _map(self, sums: np.ndarray, bias: np.ndarray, split: Split) -> np.ndarray:
        _check_split(split)
        half = 1.0 if split == "complete" else 0.5
        return (half * sums + bias).reshape(self.grid)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def decompose_pairs(
    query: QueryActivations,
    gallery_maps: Sequence[np.ndarray],
    heads: Sequence[AffineHead],
    *,
    image_indices: Sequence[int] | None = None,
    variants: Sequence[int] | None = None,
) -> tuple[PairDecomposition, ...]:
    """Decompose the similarity of a query to K gallery images exactly (see the module docstring).

    Args:
        query: the query's maps, one per variant.
        gallery_maps: per variant, ``(K, C, h, w)`` float maps of the K gallery images (float16 is
            accepted; the decomposition is then exact for those maps). Not modified.
        heads: per variant, the folded head of that variant's model (``heads[v]``).
        image_indices: gallery positions of the K images, recorded in the results (default 0..K-1).
        variants: indices of the variants to average (default all), like ``rank``'s ``variant_mask``.

    Returns:
        One :class:`PairDecomposition` per gallery image, in the given order.

    Raises:
        ValueError: if the shapes of maps and heads do not fit.
    """
    n_var = len(query.variants)
    if len(gallery_maps) != n_var or len(heads) != n_var:
        raise ValueError(
            f"need one gallery map array and one head per variant ({n_var}), got "
            f"{len(gallery_maps)} and {len(heads)}"
        )
    vids = list(range(n_var)) if variants is None else [int(v) for v in variants]
    if not vids or any(not 0 <= v < n_var for v in vids):
        raise ValueError(f"variants must be a non-empty subset of 0..{n_var - 1}, got {variants!r}")
    k = int(np.asarray(gallery_maps[vids[0]]).shape[0])
    idx = list(range(k)) if image_indices is None else [int(i) for i in image_indices]
    if len(idx) != k:
        raise ValueError(f"{len(idx)} image indices for {k} gallery maps")
    grid = heads[vids[0]].grid
    g = grid[0] * grid[1]

    # Batched cell terms: one product per model, reading its (G, D, C) weights once.
    by_head: dict[int, list[int]] = {}
    for v in vids:
        if heads[v].grid != grid:
            raise ValueError(f"all variants need the same grid, got {heads[v].grid} and {grid}")
        by_head.setdefault(id(heads[v]), []).append(v)
    terms: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.inference_mode():
        for group in by_head.values():
            head = heads[group[0]]
            c = head.channels
            rows = []
            for v in group:
                q = np.asarray(query.maps[v])
                p = np.asarray(gallery_maps[v])
                if q.shape != (c, *grid) or p.shape != (k, c, *grid):
                    raise ValueError(
                        f"variant {v}: query map {q.shape} / gallery maps {p.shape} do not fit a "
                        f"head of {c} channels on a {grid} grid with K={k}"
                    )
                rows.append(torch.from_numpy(np.array(q, dtype=np.float32))[None])
                rows.append(torch.from_numpy(np.array(p, dtype=np.float32)))
            out = head.cell_terms(torch.cat(rows))  # (B, G, D)
            for j, v in enumerate(group):
                block = out[j * (k + 1) : (j + 1) * (k + 1)]
                terms[v] = (block[0], block[1:])

    perm = mirror_permutation(grid)
    acc_k = np.zeros((k, g, g))
    acc_rq = np.zeros((k, g))
    acc_rp = np.zeros((k, g))
    acc_bb = np.zeros(k)
    cos_v = np.zeros((len(vids), k))
    q_v = np.zeros((len(vids), k, g))
    p_v = np.zeros((len(vids), k, g))
    k_v = np.zeros((len(vids), k, g, g))
    rq_v = np.zeros((len(vids), k, g))
    rp_v = np.zeros((len(vids), k, g))
    for j, v in enumerate(vids):
        u32, p32 = terms[v]
        u = u32.double()  # (G, D)
        vv = p32.double()  # (K, G, D)
        b = heads[v].bias.double()
        e_q = u.sum(0) + b
        e_p = vv.sum(1) + b
        norm = torch.linalg.vector_norm(e_q) * torch.linalg.vector_norm(e_p, dim=1)  # (K,)
        inv = torch.where(norm > 0, 1.0 / norm.clamp_min(1e-300), torch.zeros_like(norm))
        kk = torch.einsum("gd,khd->kgh", u, vv) * inv[:, None, None]
        rq = (u @ b)[None, :] * inv[:, None]
        rp = (vv @ b) * inv[:, None]
        bb = (b @ b) * inv
        kk_np, rq_np, rp_np = kk.numpy(), rq.numpy(), rp.numpy()
        if query.variants[v].flip:
            kk_np = kk_np[:, perm][:, :, perm]
            rq_np = rq_np[:, perm]
            rp_np = rp_np[:, perm]
        acc_k += kk_np
        acc_rq += rq_np
        acc_rp += rp_np
        acc_bb += bb.numpy()
        cos_v[j] = ((e_p @ e_q) * inv).numpy()
        q_v[j] = kk_np.sum(2) + rq_np
        p_v[j] = kk_np.sum(1) + rp_np
        k_v[j], rq_v[j], rp_v[j] = kk_np, rq_np, rp_np
    m = float(len(vids))
    chosen = tuple(query.variants[v] for v in vids)
    out_pairs = []
    for i in range(k):
        out_pairs.append(
            PairDecomposition(
                image_index=idx[i],
                correspondence=_frozen(acc_k[i] / m),
                query_bias=_frozen(acc_rq[i] / m),
                gallery_bias=_frozen(acc_rp[i] / m),
                bias_bias=float(acc_bb[i] / m),
                cosine=float(cos_v[:, i].mean()),
                per_variant_cosine=_frozen(cos_v[:, i].copy()),
                per_variant_query=_frozen(q_v[:, i].reshape(len(vids), *grid)),
                per_variant_gallery=_frozen(p_v[:, i].reshape(len(vids), *grid)),
                grid=grid,
                variants=chosen,
                per_variant_correspondence=_frozen(k_v[:, i].copy()),
                per_variant_query_bias=_frozen(rq_v[:, i].copy()),
                per_variant_gallery_bias=_frozen(rp_v[:, i].copy()),
            )
        )
    return tuple(out_pairs)


__all__ = [
    "SPLITS",
    "PairDecomposition",
    "Split",
    "cell_label",
    "decompose_pairs",
    "mirror_permutation",
]
