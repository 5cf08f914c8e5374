"""Pictures of faces, landmarks and maps: plotly figures for the app, RGB arrays for PNG export.

Nothing here changes a map's values: scales are chosen by the caller (per map, shared across methods,
shared across syndromes) and passed in as a :class:`Scale`, the one colour-range type of gmx
(:mod:`gmx.explain.display` builds the same type). Signed maps use a diverging colour map centred on
zero (green supports, pink opposes) over ``[-L, L]``, unsigned maps a sequential one over ``[0, L]``,
``L`` a robust maximum of ``|values|`` (:func:`robust_limit`). plotly is imported only by the figure
functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gmx._typing import ImageU8

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Anchor colours (RGB 0-255) of the colour maps, evenly spaced from low to high.
COLORMAPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    # Diverging, colour-blind safe (ColorBrewer PiYG): pink = opposes, green = supports.
    "PiYG": (
        (142, 1, 82),
        (222, 119, 174),
        (253, 224, 239),
        (247, 247, 247),
        (230, 245, 208),
        (127, 188, 65),
        (39, 100, 25),
    ),
    # Diverging blue-white-red.
    "RdBu": (
        (5, 48, 97),
        (67, 147, 195),
        (209, 229, 240),
        (247, 247, 247),
        (253, 219, 199),
        (214, 96, 77),
        (103, 0, 31),
    ),
    # Sequential (viridis anchors).
    "viridis": (
        (68, 1, 84),
        (65, 68, 135),
        (42, 120, 142),
        (34, 168, 132),
        (122, 209, 81),
        (253, 231, 37),
    ),
    # Sequential (inferno anchors), a classic for saliency.
    "inferno": (
        (0, 0, 4),
        (87, 16, 110),
        (188, 55, 84),
        (249, 142, 9),
        (252, 255, 164),
    ),
}

DIVERGING = ("PiYG", "RdBu")
SEQUENTIAL = ("viridis", "inferno")

#: What the two ends of each colour map look like, in words (low end, high end), for legends.
COLOUR_WORDS: dict[str, tuple[str, str]] = {
    "PiYG": ("pink", "green"),
    "RdBu": ("blue", "red"),
    "viridis": ("purple", "yellow"),
    "inferno": ("black", "yellow"),
}


@dataclass(frozen=True)
class Palette:
    """The one colour-map choice of the app: a diverging map for signed maps (centred on zero) and
    a sequential map for unsigned ones. Every map, overlay and raw panel on every page uses it.

    Raises:
        ValueError: for a map that is not diverging / sequential respectively.
    """

    signed: str = "PiYG"
    unsigned: str = "viridis"

    def __post_init__(self) -> None:
        if self.signed not in DIVERGING:
            raise ValueError(f"signed maps need a diverging map {DIVERGING}, got {self.signed!r}")
        if self.unsigned not in SEQUENTIAL:
            raise ValueError(
                f"unsigned maps need a sequential map {SEQUENTIAL}, got {self.unsigned!r}"
            )

    def cmap(self, signed: bool) -> str:
        """The colour map for a signed (diverging) or unsigned (sequential) map."""
        return self.signed if signed else self.unsigned


#: The colour-map choices offered by the app: label -> palette (the first, colour-blind safe, is
#: the default). Labels stay short so that the sidebar never cuts them.
PALETTES: dict[str, Palette] = {
    "pink-green · viridis": Palette("PiYG", "viridis"),
    "blue-red · viridis": Palette("RdBu", "viridis"),
    "pink-green · inferno": Palette("PiYG", "inferno"),
    "blue-red · inferno": Palette("RdBu", "inferno"),
}
DEFAULT_PALETTE = next(iter(PALETTES))


def robust_limit(values: np.ndarray | Sequence[np.ndarray], percentile: float = 99.5) -> float:
    """``percentile`` of ``|values|`` (over all arrays given, finite values only).

    Robust to single hot pixels; 1.0 when that is 0 or not finite (an all-zero map).

    Raises:
        ValueError: for a percentile outside ``(0, 100]`` or no arrays.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    arrays = [values] if isinstance(values, np.ndarray) else list(values)
    if not arrays:
        raise ValueError("no values given")
    flat = np.concatenate([np.abs(np.asarray(a, dtype=np.float64)).ravel() for a in arrays])
    flat = flat[np.isfinite(flat)]
    limit = float(np.percentile(flat, percentile)) if flat.size else 0.0
    return limit if limit > 0 and np.isfinite(limit) else 1.0


@dataclass(frozen=True)
class Scale:
    """A colour range: the values mapped to the two ends of the colour map.

    Attributes:
        vmin: value at the low end (``-L`` for signed maps, 0 for unsigned ones).
        vmax: value at the high end (``L``).
        diverging: a diverging colour scale centred on 0 (signed maps).
    """

    vmin: float
    vmax: float
    diverging: bool = False

    @staticmethod
    def for_maps(maps: Sequence[np.ndarray], *, signed: bool, percentile: float = 99.5) -> Scale:
        """One scale shared by several maps: ``[-L, L]`` if signed, else ``[0, L]``.

        ``L`` is :func:`robust_limit` of the maps (zero keeps the neutral colour of signed maps
        and the bottom colour of unsigned ones, so "no attribution" always looks the same).
        """
        if not maps:
            raise ValueError("need at least one map to choose a scale")
        limit = robust_limit(list(maps), percentile)
        return Scale(-limit, limit, True) if signed else Scale(0.0, limit, False)


def colormap_lut(name: str, n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 lookup table interpolated between the anchor colours of ``name``."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; known: {sorted(COLORMAPS)}")
    anchors = np.asarray(COLORMAPS[name], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, n)
    lut = np.stack([np.interp(t, xs, anchors[:, c]) for c in range(3)], axis=1)
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)


def plotly_colorscale(name: str) -> list[list[float | str]]:
    """The colour map as a plotly ``colorscale``."""
    anchors = COLORMAPS[name]
    xs = np.linspace(0.0, 1.0, len(anchors))
    return [[float(x), f"rgb({r},{g},{b})"] for x, (r, g, b) in zip(xs, anchors, strict=True)]


def colorize(values: np.ndarray, scale: Scale, cmap: str) -> ImageU8:
    """Map a ``(H, W)`` float array to ``(H, W, 3)`` uint8 RGB with a colour map and scale."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"expected a (H, W) map, got shape {v.shape}")
    span = scale.vmax - scale.vmin
    t = np.clip((np.nan_to_num(v, nan=scale.vmin) - scale.vmin) / span, 0.0, 1.0)
    lut = colormap_lut(cmap)
    return lut[np.rint(t * (len(lut) - 1)).astype(np.int64)]


def colour_bar(cmap: str, width: int = 256, height: int = 12) -> ImageU8:
    """``(height, width, 3)`` uint8 legend strip of ``cmap``, low values on the left."""
    if width < 2 or height < 1:
        raise ValueError(f"a colour bar needs width >= 2 and height >= 1, got {width}x{height}")
    lut = colormap_lut(cmap, width)
    return np.ascontiguousarray(np.broadcast_to(lut[None], (height, width, 3)))


def format_value(value: float) -> str:
    """A colour-scale end as a short number (3 significant digits, sign shown when negative)."""
    return f"{value:.3g}".replace("-", "\u2212")


def range_text(scale: Scale) -> str:
    """The scale's range in a few characters: ``±0.03`` (signed) or ``0 to 0.03`` (unsigned)."""
    if scale.diverging:
        return f"±{format_value(max(abs(scale.vmin), abs(scale.vmax)))}"
    return f"{format_value(scale.vmin)} to {format_value(scale.vmax)}"


def legend_text(scale: Scale, cmap: str) -> str:
    """The legend of ``scale`` in words, e.g. ``pink −0.03 · 0 · +0.03 green``."""
    low, high = COLOUR_WORDS.get(cmap, ("low", "high"))
    if scale.diverging:
        return f"{low} {format_value(scale.vmin)} · 0 · +{format_value(scale.vmax)} {high}"
    return f"{low} {format_value(scale.vmin)} · {format_value(scale.vmax)} {high}"


def sign_filter(values: np.ndarray, mode: str) -> np.ndarray:
    """Keep the positive part, the negative part, or both of a signed map (a display choice)."""
    v = np.asarray(values, dtype=np.float32)
    if mode == "both":
        return v.copy()
    if mode == "positive":
        return np.where(v > 0, v, 0).astype(np.float32)
    if mode == "negative":
        return np.where(v < 0, v, 0).astype(np.float32)
    raise ValueError(f"sign mode must be positive, negative or both, got {mode!r}")


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Display resize of a map already on the template to a picture's ``size = (H, W)``.

    Bilinear with half-pixel centres (OpenCV ``INTER_LINEAR``): right for pixel maps. Coarse cell
    maps of a network must be placed first (:func:`gmx.encode.geometry.place_map`): this resize
    assumes cells that tile the picture.
    """
    import cv2

    v = np.asarray(values, dtype=np.float32)
    if v.shape == size:
        return v.copy()
    return cv2.resize(v, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def overlay(
    face: ImageU8,
    values: np.ndarray,
    scale: Scale,
    *,
    cmap: str = "PiYG",
    opacity: float = 0.55,
) -> ImageU8:
    """Blend a colourised map over a face. The map is resized to the face if needed.

    Where a diverging map is near zero the face shows through (alpha grows with ``|value|``).
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    img = np.asarray(face)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    v = resize_map(values, img.shape[:2])
    colour = colorize(v, scale, cmap).astype(np.float32)
    if cmap in DIVERGING:
        half = max(abs(scale.vmin), abs(scale.vmax)) or 1.0
        alpha = opacity * np.clip(np.abs(v) / half, 0.0, 1.0)[..., None]
    else:
        alpha = np.full((*v.shape, 1), opacity, dtype=np.float32)
    out = img.astype(np.float32) * (1 - alpha) + colour * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def image_figure(
    image: ImageU8,
    *,
    points: np.ndarray | None = None,
    boxes: Sequence[tuple[float, float, float, float]] = (),
    box_labels: Sequence[str] = (),
    height: int = 320,
    title: str | None = None,
) -> go.Figure:
    """An image with optional ``(x, y)`` landmark points and face boxes."""
    import plotly.graph_objects as go

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    fig = go.Figure(go.Image(z=img, hoverinfo="skip"))
    if points is not None and len(points):
        pts = np.asarray(points)
        fig.add_trace(
            go.Scatter(
                x=pts[:, 0],
                y=pts[:, 1],
                mode="markers",
                marker={"size": 2.5, "color": "#00e5ff"},
                hovertemplate="landmark %{customdata}<br>x=%{x:.1f} y=%{y:.1f}<extra></extra>",
                customdata=np.arange(len(pts)),
                showlegend=False,
            )
        )
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        fig.add_shape(
            type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line={"color": "#ffb000", "width": 2}
        )
        if i < len(box_labels):
            fig.add_annotation(
                x=x0,
                y=y0,
                text=box_labels[i],
                showarrow=False,
                yshift=10,
                xanchor="left",
                font={"color": "#ffb000", "size": 13},
                bgcolor="rgba(0,0,0,0.5)",
            )
    _layout(fig, height=height, title=title)
    # keep the view on the image even when landmarks fall outside it (e.g. a chin below the crop)
    fig.update_xaxes(range=[-0.5, img.shape[1] - 0.5])
    fig.update_yaxes(range=[img.shape[0] - 0.5, -0.5])
    return fig


def map_figure(
    face: ImageU8,
    values: np.ndarray,
    scale: Scale,
    *,
    cmap: str = "PiYG",
    opacity: float = 0.55,
    height: int = 260,
    title: str | None = None,
    value_label: str = "attribution",
) -> go.Figure:
    """A map over a face with hover values of the map (raw, not normalised)."""
    import plotly.graph_objects as go

    img = overlay(face, values, scale, cmap=cmap, opacity=opacity)
    v = resize_map(values, img.shape[:2])
    fig = go.Figure(
        go.Image(
            z=img,
            customdata=v[..., None],
            hovertemplate=f"x=%{{x}} y=%{{y}}<br>{value_label}=%{{customdata[0]:.4g}}<extra></extra>",
        )
    )
    _layout(fig, height=height, title=title, shape=img.shape[:2])
    return fig


def _layout(
    fig: go.Figure, *, height: int, title: str | None, shape: tuple[int, ...] | None = None
) -> None:
    """Hidden square-pixel axes, ``height``, ``title``; with ``shape`` ``(h, w)`` the view fixed on
    the image. One ``update_layout`` (each plotly update call validates again)."""
    # constrain="domain": keep square pixels by shrinking the plot area, never by cropping the image
    xaxis: dict[str, object] = {"visible": False, "showgrid": False, "constrain": "domain"}
    yaxis: dict[str, object] = {"visible": False, "showgrid": False, "scaleanchor": "x",
                                "constrain": "domain"}  # fmt: skip
    if shape is not None:
        xaxis["range"] = [-0.5, shape[1] - 0.5]
        yaxis["range"] = [shape[0] - 0.5, -0.5]
    fig.update_layout(
        xaxis=xaxis,
        yaxis=yaxis,
        height=height,
        margin={"l": 0, "r": 0, "t": 28 if title else 0, "b": 0},
        title={"text": title, "font": {"size": 13}} if title else None,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
    )


def montage(
    images: Sequence[ImageU8], columns: int, *, pad: int = 4, side: int | None = None
) -> ImageU8:
    """Tile equally sized RGB images into one image (row-major), white padding.

    Args:
        images: ``(h, w, 3)`` (or ``(h, w)`` grey) uint8 images, all the same size unless ``side``.
        columns: images per row.
        pad: white pixels between and around the images.
        side: resize every image to ``side x side`` first (bilinear), e.g. to enlarge 112 px faces.
    """
    if not images:
        raise ValueError("montage needs at least one image")
    if side is not None:
        import cv2

        images = [
            cv2.resize(np.asarray(im), (side, side), interpolation=cv2.INTER_LINEAR)
            for im in images
        ]
    h, w = np.asarray(images[0]).shape[:2]
    rows = -(-len(images) // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.shape[:2] != (h, w):
            raise ValueError(f"image {i} has shape {a.shape[:2]}, expected {(h, w)}")
        r, c = divmod(i, columns)
        out[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = a
    return out


__all__ = [
    "COLORMAPS",
    "COLOUR_WORDS",
    "DEFAULT_PALETTE",
    "DIVERGING",
    "PALETTES",
    "SEQUENTIAL",
    "Palette",
    "Scale",
    "colorize",
    "colormap_lut",
    "colour_bar",
    "downscale",
    "format_value",
    "image_figure",
    "legend_text",
    "map_figure",
    "montage",
    "overlay",
    "plotly_colorscale",
    "range_text",
    "resize_map",
    "robust_limit",
    "sign_filter",
    "to_data_uri",
    "to_png_bytes",
]


def to_png_bytes(image: ImageU8) -> bytes:
    """PNG encoding of an RGB (or grey) uint8 image."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def to_data_uri(image: ImageU8) -> str:
    """``data:image/png;base64,...`` URI of an image, for tables and HTML."""
    import base64

    return "data:image/png;base64," + base64.b64encode(to_png_bytes(image)).decode("ascii")


def downscale(image: ImageU8, max_side: int) -> tuple[ImageU8, float]:
    """Shrink an image so that its longer side is at most ``max_side``; returns it and the factor."""
    import cv2

    h, w = image.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    if factor >= 1.0:
        return image, 1.0
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor
