"""The explanation panel of one photo: targets from a ranking, the grid of maps, and its exports.

Glue between :mod:`gmx.gallery` (what the model answered) and :mod:`gmx.explain` (why), used by the
Explain page and by scripts. Pure functions; nothing here touches streamlit.
"""

from __future__ import annotations

import io
import itertools
import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gmx import __version__
from gmx._typing import ImageU8
from gmx.explain import AttributionMap, ContrastTarget, LogitTarget, SimilarityTarget, Target
from gmx.explain.display import display_ranges
from gmx.gallery import Gallery, Ranking, SyndromeMatch
from gmx.variants import Variant
from gmx.viz import (
    COLOUR_WORDS,
    PALETTES,
    Palette,
    Scale,
    colour_bar,
    legend_text,
    overlay,
    sign_filter,
)

if TYPE_CHECKING:
    from gmx.pipeline import Diagnoser, Diagnosis

#: Display policies of the colour scale: label -> share mode (the first is the default).
#: "all" shares one scale among maps in the same units only (:func:`map_units`).
SCALE_MODES: dict[str, str] = {
    "shared per method (compare syndromes)": "method",
    "per map": "map",
    "shared across methods with the same units": "all",
}
DEFAULT_SCALE = next(iter(SCALE_MODES))

#: Methods that take seconds (batched forward passes): computed after the fast ones, cancellable.
SLOW_METHODS: tuple[str, ...] = ("occlusion", "integrated_gradients")

#: Units of a method's map values, for a scale shared across methods: maps only share a colour
#: scale with maps in the same units (FullGrad's sums over layers, or gradients next to
#: attributions, would otherwise blank every other map). Methods not listed have their own units.
METHOD_UNITS: Mapping[str, str] = {
    "occlusion": "change of the score",
    "deeplift": "share of the score",
    "integrated_gradients": "share of the score",
    "saliency": "gradient of the score",
    "deconvolution": "gradient of the score",
    "guided_backprop": "gradient of the score",
    "gradcam": "gradient x activation",
    "gradcam_signed": "gradient x activation",
    "hirescam": "gradient x activation",
    "hirescam_signed": "gradient x activation",
}

TargetKind = Literal["similarity", "logit", "contrast"]
SignMode = Literal["both", "positive", "negative"]

#: What each explanation target explains, in words for the page.
TARGET_LABELS: dict[str, str] = {
    "similarity": "GestaltMatcher score (similarity to nearest gallery image)",
    "logit": "Classifier logit",
    "contrast": "Syndrome rather than the next one",
}
SIGN_MODES: tuple[str, ...] = ("both", "positive", "negative")


def map_units(method: str) -> str:
    """Units of ``method``'s map values (:data:`METHOD_UNITS`, else the method's own)."""
    return METHOD_UNITS.get(method, f"{method} units")


@dataclass(frozen=True)
class PanelRow:
    """One explained syndrome: the match and the target that explains it.

    Attributes:
        match: the explained syndrome.
        target: what is explained.
        versus: for a contrast row, the syndrome it is contrasted with.
    """

    match: SyndromeMatch
    target: Target
    versus: SyndromeMatch | None = None

    @property
    def label(self) -> str:
        """``#1 Name``, plus ``rather than #2 Other`` for a contrast row."""
        text = f"#{self.match.rank} {self.match.name}"
        if self.versus is not None:
            text += f" rather than #{self.versus.rank} {self.versus.name}"
        return text


@dataclass(frozen=True)
class PanelRequest:
    """Everything the Explain page asks for (made by the page's controls, frozen).

    Attributes:
        n_rows: top syndromes to explain.
        target: ``similarity``, ``logit`` or ``contrast``.
        all_variants: every model and TTA variant (else the first model, unflipped colour input).
        methods: chosen method names (fast and slow).
        slow: add every slow method (:data:`SLOW_METHODS`).
        window, stride, rerank: occlusion parameters.
        ig_steps: integrated-gradients steps.
        smooth: SmoothGrad samples for the gradient methods (0 = off).
        palette: label in :data:`gmx.viz.PALETTES`.
        opacity: overlay opacity in ``[0, 1]``.
        sign: ``both``, ``positive`` or ``negative``.
        scale: label in :data:`SCALE_MODES`.
    """

    n_rows: int = 3
    target: TargetKind = "similarity"
    all_variants: bool = True
    methods: tuple[str, ...] = ()
    slow: bool = False
    window: int = 10
    stride: int = 5
    rerank: bool = False
    ig_steps: int = 32
    smooth: int = 0
    palette: str = field(default_factory=lambda: next(iter(PALETTES)))
    opacity: float = 0.6
    sign: SignMode = "both"
    scale: str = DEFAULT_SCALE

    def __post_init__(self) -> None:
        if self.target not in TARGET_LABELS:
            raise ValueError(f"target must be one of {sorted(TARGET_LABELS)}, got {self.target!r}")
        if self.sign not in SIGN_MODES:
            raise ValueError(f"sign must be one of {SIGN_MODES}, got {self.sign!r}")
        if self.scale not in SCALE_MODES:
            raise ValueError(f"scale must be one of {list(SCALE_MODES)}, got {self.scale!r}")
        if self.palette not in PALETTES:
            raise ValueError(f"palette must be one of {list(PALETTES)}, got {self.palette!r}")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")
        if self.n_rows < 1:
            raise ValueError(f"n_rows must be >= 1, got {self.n_rows}")

    @property
    def fast_methods(self) -> tuple[str, ...]:
        """Chosen methods that are not slow, in the chosen order."""
        return tuple(m for m in self.methods if m not in SLOW_METHODS)

    @property
    def slow_methods(self) -> tuple[str, ...]:
        """Slow methods to compute: chosen in the list, or all of them with :attr:`slow`."""
        return tuple(m for m in SLOW_METHODS if self.slow or m in self.methods)

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """Per-method engine parameters."""
        return {
            "occlusion": {"window": self.window, "stride": self.stride, "rerank": self.rerank},
            "integrated_gradients": {"steps": self.ig_steps, "smooth_samples": 0},
            **{
                m: {"smooth_samples": self.smooth}
                for m in ("saliency", "deconvolution", "guided_backprop")
            },
        }

    @property
    def share(self) -> str:
        """The scale's share mode (``map``, ``method`` or ``all``)."""
        return SCALE_MODES[self.scale]

    @property
    def colours(self) -> Palette:
        """The chosen :class:`gmx.viz.Palette`."""
        return PALETTES[self.palette]


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
        PanelRow(a.match, ContrastTarget(a.target, b.target), versus=b.match)
        for a, b in itertools.pairwise(rows)
    ]


def panel_rows(
    target: str,
    ranking: Ranking,
    gallery: Gallery,
    variants: Sequence[Variant],
    classes: Sequence[str] | None,
    n_rows: int,
) -> tuple[list[PanelRow], list[str]]:
    """The grid's rows for a target kind (:data:`TARGET_LABELS`): ``n_rows`` similarity rows,
    logit rows of the syndromes the classifier knows, or ``n_rows`` contrasts of each syndrome with
    the next one (one fewer where the ranking ends). Returns the rows and the syndromes left out.

    Raises:
        ValueError: for an unknown target kind.
    """
    if target == "logit":
        return logit_rows(ranking, classes, n_rows)
    if target == "contrast":
        return contrast_rows(similarity_rows(ranking, gallery, variants, n_rows + 1)), []
    if target == "similarity":
        return similarity_rows(ranking, gallery, variants, n_rows), []
    raise ValueError(f"target must be one of {sorted(TARGET_LABELS)}, got {target!r}")


def display_maps(
    maps: Sequence[AttributionMap], scale_mode: str, sign_mode: str
) -> tuple[list[np.ndarray], list[Scale]]:
    """Values to draw (sign-filtered) and the colour scale of each map (never changes the maps).

    ``scale_mode``: ``"map"`` each map its own scale, ``"method"`` one scale per method,
    ``"all"`` one scale per units (:func:`map_units`) and sign: maps in other units (FullGrad,
    gradients) never share, and so never blank, the attributions' scale.
    """
    if scale_mode not in SCALE_MODES.values():
        raise ValueError(
            f"scale mode must be one of {sorted(SCALE_MODES.values())}, got {scale_mode!r}"
        )
    if scale_mode == "all":
        ranges: list[Scale | None] = [None] * len(maps)
        groups: dict[tuple[str, bool], list[int]] = {}
        for i, m in enumerate(maps):
            groups.setdefault((map_units(m.method), m.signed), []).append(i)
        for idx in groups.values():
            shared = display_ranges([maps[i] for i in idx], share="all")
            for i, r in zip(idx, shared, strict=True):
                ranges[i] = r
        scales = [r for r in ranges if r is not None]
    else:
        scales = display_ranges(list(maps), share=scale_mode)  # type: ignore[arg-type]
    values = [sign_filter(m.values, sign_mode) if m.signed else np.asarray(m.values) for m in maps]
    return values, scales


def reading_note(palette: Palette) -> str:
    """How to read every map of the grid, in words (the colours of ``palette``)."""
    low, high = COLOUR_WORDS[palette.signed]
    return (
        f"How to read: on signed maps, {high} regions make the face look more like the row's "
        f"syndrome and {low} regions less (a contrast row: more like it than like the syndrome it "
        f"is contrasted with); on unsigned maps, {COLOUR_WORDS[palette.unsigned][1]} regions "
        "matter most, with no direction."
    )


def reading(row: PanelRow, signed: bool, palette: Palette) -> str:
    """How to read a map of ``row``, in words: what its colours mean for the syndrome."""
    if not signed:
        high = COLOUR_WORDS[palette.unsigned][1]
        return f"{high}: regions that matter most for {row.match.name} (no direction)"
    low, high = COLOUR_WORDS[palette.signed]
    if row.versus is not None:
        return (
            f"{high}: regions that favour {row.match.name} over {row.versus.name}; "
            f"{low}: regions that favour {row.versus.name}"
        )
    return (
        f"{high}: regions that make the face look more like {row.match.name}; "
        f"{low}: regions that make it look less like it"
    )


#: Labelled PNG layout (pixels): label column, padding, text size, colour-bar height.
PNG_LABEL_WIDTH = 260
PNG_PAD = 8
PNG_FONT_SIZE = 15
PNG_BAR_HEIGHT = 12
PNG_DEMO_NOTICE = "SYNTHETIC DEMO - NOT FOR CLINICAL USE: the model and gallery are synthetic."
_PNG_CHAR_WIDTH = 0.5  # of the font size: average width of one character, for wrapping


def grid_png(
    face: ImageU8,
    rows: Sequence[PanelRow],
    grid: Sequence[Mapping[str, AttributionMap]],
    methods: Sequence[str],
    *,
    scale_mode: str = "method",
    sign_mode: str = "both",
    palette: Palette | None = None,
    opacity: float = 0.6,
    upscale: int = 2,
    demo: bool = False,
    provenance: Mapping[str, object] | None = None,
) -> bytes:
    """Labelled PNG of the grid: rows = syndromes (with what a contrast row is contrasted with),
    columns = the face then ``methods``, a colour bar with its range per method column (per map in
    ``"map"`` scale mode), the scale, sign and colour choice, the demo notice and the provenance.

    Raises:
        ValueError: for an empty grid, or rows and grid of different lengths.
    """
    from PIL import Image, ImageDraw, ImageFont

    palette = palette or Palette()
    if not rows or not methods:
        raise ValueError("the grid is empty")
    if len(rows) != len(grid):
        raise ValueError(f"{len(rows)} rows but {len(grid)} rows of maps")
    flat = [grid[r][m] for r in range(len(rows)) for m in methods]
    values, scales = display_maps(flat, scale_mode, sign_mode)
    tile = face.shape[0] * upscale
    font = ImageFont.load_default(PNG_FONT_SIZE)
    line_h = PNG_FONT_SIZE + 4
    per_map = scale_mode == "map"

    def wrap(text: str, width: int) -> list[str]:
        text = text.replace("\u2212", "-")
        chars = max(8, int(width / (PNG_FONT_SIZE * _PNG_CHAR_WIDTH)))
        return textwrap.wrap(text, chars) or [""]

    def big(img: np.ndarray) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(img)).resize((tile, tile), Image.NEAREST)

    n_cols = 1 + len(methods)
    width = PNG_LABEL_WIDTH + n_cols * (tile + PNG_PAD) + PNG_PAD
    text_w = width - 2 * PNG_PAD
    footer = [
        reading_note(palette),
        f"Colour scale: {_scale_label(scale_mode)}. Sign shown: {sign_mode}. Colours: "
        f"{palette.signed} (signed maps), {palette.unsigned} (unsigned maps); opacity {opacity:g}.",
        *(f"{k}: {_jsonable(v)}" for k, v in (provenance or {}).items()),
    ]
    footer_lines = [ln for t in footer for ln in wrap(t, text_w)]
    head_lines = max(len(wrap(grid[0][m].display_name, tile)) for m in methods)
    legend_h = PNG_BAR_HEIGHT + 2 * line_h
    cell_text = line_h if per_map else 0
    row_h = tile + cell_text + PNG_PAD
    demo_h = 2 * line_h if demo else 0
    height = (demo_h + head_lines * line_h + legend_h + len(rows) * row_h
              + (len(footer_lines) + 1) * line_h + 2 * PNG_PAD)  # fmt: skip
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = PNG_PAD
    if demo:
        draw.rectangle([0, 0, width, demo_h], fill=(255, 236, 179))
        draw.text((PNG_PAD, y), PNG_DEMO_NOTICE, fill=(140, 0, 0), font=font)
        y = demo_h + PNG_PAD // 2

    def col_x(c: int) -> int:
        return PNG_LABEL_WIDTH + PNG_PAD + c * (tile + PNG_PAD)

    draw.text((PNG_PAD, y), "Syndrome", fill="black", font=font)
    draw.text((col_x(0), y), "Face", fill="black", font=font)
    for c, m in enumerate(methods, start=1):
        for j, ln in enumerate(wrap(grid[0][m].display_name, tile)):
            draw.text((col_x(c), y + j * line_h), ln, fill="black", font=font)
    y += head_lines * line_h
    for c, m in enumerate(methods, start=1):
        first = flat[methods.index(m)]
        cmap = palette.cmap(first.signed)
        canvas.paste(Image.fromarray(colour_bar(cmap, tile, PNG_BAR_HEIGHT)), (col_x(c), y))
        text = "own scale per map" if per_map else legend_text(scales[methods.index(m)], cmap)
        for j, ln in enumerate(wrap(text, tile)[:2]):
            draw.text((col_x(c), y + PNG_BAR_HEIGHT + j * line_h), ln, fill="black", font=font)
    y += legend_h
    k = 0
    for row in rows:
        label = [row.label, f"distance {row.match.distance:.3f}"]
        lines = [ln for t in label for ln in wrap(t, PNG_LABEL_WIDTH - PNG_PAD)]
        for j, ln in enumerate(lines[: tile // line_h]):
            draw.text((PNG_PAD, y + j * line_h), ln, fill="black", font=font)
        canvas.paste(big(face), (col_x(0), y))
        for c, _m in enumerate(methods, start=1):
            amap = flat[k]
            cmap = palette.cmap(amap.signed)
            canvas.paste(big(overlay(face, values[k], scales[k], cmap=cmap, opacity=opacity)),
                         (col_x(c), y))  # fmt: skip
            if per_map:
                draw.text((col_x(c), y + tile), wrap(legend_text(scales[k], cmap), tile)[0],
                          fill="black", font=font)  # fmt: skip
            k += 1
        y += row_h
    y += line_h // 2
    for ln in footer_lines:
        draw.text((PNG_PAD, y), ln, fill=(60, 60, 60), font=font)
        y += line_h
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _scale_label(scale_mode: str) -> str:
    return next(label for label, mode in SCALE_MODES.items() if mode == scale_mode)


def maps_npz(
    rows: Sequence[PanelRow],
    grid: Sequence[Mapping[str, AttributionMap]],
    *,
    provenance: Mapping[str, object],
    demo: bool = False,
) -> bytes:
    """``.npz`` of every raw map (values and native-resolution ``raw``) plus a JSON index.

    With ``demo`` (the synthetic demo model and gallery are active) the provenance says so:
    ``"demo": true`` and a ``"notice"``; it always holds ``"demo"``.

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
        provenance=np.array(json.dumps(_provenance(provenance, demo))),
        **arrays,
    )
    return buf.getvalue()


def explanation_provenance(
    diagnosis: Diagnosis,
    diagnoser: Diagnoser,
    variants: Sequence[Variant],
    target: str,
    *,
    case_id: str | None = None,
    methods: Sequence[str] | None = None,
    rows: Sequence[PanelRow] | None = None,
) -> dict[str, object]:
    """The provenance of an explanation, for :func:`grid_png` and :func:`maps_npz`: what the maps
    were computed with. The Explain page's downloads and the service's ``/explain`` both use it.

    Keys, in order: ``photo_sha256`` (the photo itself is never kept), ``models`` (name and the
    first 12 hex digits of each model's weights fingerprint), ``gallery`` (name and version),
    ``face_index``, ``variants`` (labels), ``target``. With ``case_id`` (an answer of the service)
    it starts with ``gmx`` (the version) and ``case_id``; ``methods`` and ``rows`` add ``methods``
    and ``syndromes`` (the rows' labels) at the end.
    """
    head: dict[str, object] = {} if case_id is None else {"gmx": __version__, "case_id": case_id}
    gallery = diagnoser.gallery
    out: dict[str, object] = {
        **head,
        "photo_sha256": diagnosis.image_sha256,
        "models": [f"{m.card.name} {m.fingerprint[:12]}" for m in diagnoser.models],
        "gallery": f"{gallery.name} {gallery.version}",
        "face_index": diagnosis.face_index,
        "variants": [v.label for v in variants],
        "target": target,
    }
    if methods is not None:
        out["methods"] = list(methods)
    if rows is not None:
        out["syndromes"] = [r.label for r in rows]
    return out


def _provenance(provenance: Mapping[str, object], demo: bool) -> dict[str, object]:
    out = {k: _jsonable(v) for k, v in provenance.items()}
    out["demo"] = bool(demo)
    if demo:
        out["notice"] = PNG_DEMO_NOTICE
    return out


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
    "DEFAULT_SCALE",
    "METHOD_UNITS",
    "SCALE_MODES",
    "SIGN_MODES",
    "SLOW_METHODS",
    "TARGET_LABELS",
    "PanelRequest",
    "PanelRow",
    "contrast_rows",
    "display_maps",
    "explanation_provenance",
    "grid_png",
    "logit_rows",
    "map_units",
    "maps_npz",
    "panel_rows",
    "reading",
    "reading_note",
    "similarity_rows",
    "variant_indices",
]
