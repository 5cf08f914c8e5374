"""The explanation panel of one photo: targets from a ranking, the grid of maps, and its exports.

Glue between :mod:`gmx.gallery` (what the model answered) and :mod:`gmx.explain` (why), used by the
Explain page and by scripts. Pure functions; nothing here touches streamlit.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gmx._typing import ImageU8
from gmx.explain import AttributionMap, ContrastTarget, LogitTarget, SimilarityTarget, Target
from gmx.explain.display import display_ranges
from gmx.gallery import Gallery, Ranking, SyndromeMatch
from gmx.variants import Variant
from gmx.viz import Scale, montage, overlay, sign_filter, to_png_bytes

#: Display policies of the colour scale: label -> gmx.explain.display share mode.
SCALE_MODES: dict[str, str] = {
    "per map": "map",
    "shared across syndromes (per method)": "method",
    "shared across all maps": "all",
}


@dataclass(frozen=True)
class PanelRow:
    """One explained syndrome: the match and the target that explains it."""

    match: SyndromeMatch
    target: Target


def variant_indices(all_variants: Sequence[Variant], chosen: Sequence[Variant]) -> list[int]:
    """Positions of ``chosen`` variants inside ``all_variants`` (gallery/ensemble order).

    Raises:
        ValueError: if a chosen variant is not in ``all_variants``.
    """
    pos = {v: i for i, v in enumerate(all_variants)}
    missing = [v.label for v in chosen if v not in pos]
    if missing:
        raise ValueError(f"variants {missing} are not among {[v.label for v in all_variants]}")
    return [pos[v] for v in chosen]


def similarity_rows(
    ranking: Ranking,
    gallery: Gallery,
    variants: Sequence[Variant],
    top_k: int,
) -> list[PanelRow]:
    """GestaltMatcher-Arc's score of each top-k syndrome as a target: mean cosine similarity, over
    ``variants``, to the syndrome's nearest gallery image (with all of the syndrome's images, for
    re-ranked occlusion)."""
    idx = variant_indices(gallery.variants, variants)
    syndromes = np.array([im.syndrome_id for im in gallery.images])
    embeddings = np.asarray(gallery.embeddings)
    rows = []
    for m in ranking.syndromes[:top_k]:
        label = f"{m.name} (nearest gallery image {m.image_id})"
        own = embeddings[syndromes == m.syndrome_id][:, idx]
        target = SimilarityTarget(embeddings[m.image_index][idx], label, syndrome_embeddings=own)
        rows.append(PanelRow(m, target))
    return rows


def logit_rows(
    ranking: Ranking, classes: Sequence[str] | None, top_k: int
) -> tuple[list[PanelRow], list[str]]:
    """Classifier-logit targets of the top-k syndromes that the classifier knows.

    Returns the rows and the names of syndromes left out (not classifier classes, e.g. rare ones).
    """
    if not classes:
        return [], [m.name for m in ranking.syndromes[:top_k]]
    index = {c: i for i, c in enumerate(classes)}
    rows, skipped = [], []
    for m in ranking.syndromes[:top_k]:
        if m.syndrome_id in index:
            rows.append(PanelRow(m, LogitTarget(index[m.syndrome_id], label=m.name)))
        else:
            skipped.append(m.name)
    return rows, skipped


def contrast_rows(rows: Sequence[PanelRow]) -> list[PanelRow]:
    """ "Syndrome s rather than the next-ranked one" for each row but the last."""
    return [
        PanelRow(a.match, ContrastTarget(a.target, b.target)) for a, b in itertools.pairwise(rows)
    ]


def display_maps(
    maps: Sequence[AttributionMap], scale_mode: str, sign_mode: str
) -> tuple[list[np.ndarray], list[Scale]]:
    """Values to draw (sign-filtered) and the colour scale of each map (never changes the maps)."""
    if scale_mode not in SCALE_MODES.values():
        raise ValueError(
            f"scale mode must be one of {sorted(SCALE_MODES.values())}, got {scale_mode!r}"
        )
    ranges = display_ranges(list(maps), share=scale_mode)  # type: ignore[arg-type]
    values = [sign_filter(m.values, sign_mode) if m.signed else np.asarray(m.values) for m in maps]
    return values, ranges


def grid_png(
    face: ImageU8,
    grid: Sequence[Sequence[AttributionMap]],
    *,
    scale_mode: str = "map",
    sign_mode: str = "both",
    cmap: str = "PiYG",
    unsigned_cmap: str = "inferno",
    opacity: float = 0.6,
    upscale: int = 2,
) -> bytes:
    """PNG of the grid (rows = syndromes, columns = methods), the face in the first column."""
    flat = [m for row in grid for m in row]
    if not flat:
        raise ValueError("the grid is empty")
    values, scales = display_maps(flat, scale_mode, sign_mode)
    tiles: list[np.ndarray] = []
    k = 0
    for row in grid:
        tiles.append(face)
        for m in row:
            tiles.append(
                overlay(face, values[k], scales[k], cmap=cmap if m.signed else unsigned_cmap,
                        opacity=opacity)
            )  # fmt: skip
            k += 1
    columns = 1 + max(len(r) for r in grid)
    img = montage(tiles, columns)
    if upscale > 1:
        img = np.repeat(np.repeat(img, upscale, axis=0), upscale, axis=1)
    return to_png_bytes(img)


def maps_npz(
    rows: Sequence[PanelRow],
    grid: Sequence[Mapping[str, AttributionMap]],
    *,
    provenance: Mapping[str, object],
) -> bytes:
    """``.npz`` of every raw map (values and native-resolution ``raw``) plus a JSON index.

    Keys: ``r{i}_{method}_values`` ``(112, 112)``, ``r{i}_{method}_raw``; ``index`` is a JSON string
    with each row's syndrome, target, and each map's parameters, sign and timing; ``provenance`` the
    models, gallery and photo hash the maps were computed with.
    """
    arrays: dict[str, np.ndarray] = {}
    index = []
    for i, (row, maps) in enumerate(zip(rows, grid, strict=True)):
        entry = {
            "row": i,
            "syndrome_id": row.match.syndrome_id,
            "syndrome": row.match.name,
            "distance": row.match.distance,
            "target": row.target.description,
            "maps": {},
        }
        for name, m in maps.items():
            arrays[f"r{i}_{name}_values"] = np.asarray(m.values)
            arrays[f"r{i}_{name}_raw"] = np.asarray(m.raw)
            entry["maps"][name] = {
                "display_name": m.display_name,
                "signed": m.signed,
                "params": {k: _jsonable(v) for k, v in m.params.items()},
                "elapsed_s": m.elapsed_s,
            }
        index.append(entry)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        index=np.array(json.dumps(index)),
        provenance=np.array(json.dumps({k: _jsonable(v) for k, v in provenance.items()})),
        **arrays,
    )
    return buf.getvalue()


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


__all__ = [
    "SCALE_MODES",
    "PanelRow",
    "contrast_rows",
    "display_maps",
    "grid_png",
    "logit_rows",
    "maps_npz",
    "similarity_rows",
    "variant_indices",
]
