"""Facial features of the synthetic syndromes, each named after a real HPO term.

A feature is either a *shape* change (a smooth, local displacement of the 478 mesh landmarks; the
face is then re-rendered with one piecewise-affine warp from the identity's texture) or a *texture*
change (a soft, local repaint on the rendered canvas), or both. Every feature takes a strength
``s`` (1 = nominal; patients draw ``s`` in ``STRENGTH_RANGE``); displacements are in units of the
face's inter-ocular distance (IOD, eye centre to eye centre) so they scale with the face.

Coordinates: canonical canvas pixels, ``(x, y)``; "right"/"left" are the subject's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from gmx._typing import Points
from gmx.synth import mesh

#: Patients draw each feature's strength uniformly from this range (1 = nominal).
STRENGTH_RANGE: tuple[float, float] = (0.5, 1.2)

ShapeFn = Callable[[Points, float], Points]
"""``(points (K, 2), strength) -> moved points``; never mutates its input.

The first 478 points are the mesh landmarks (they define the anchors: eye centres, IOD, lips ...);
any further points (the outer rings of :func:`gmx.synth.mesh.augment`) are moved by the same smooth
displacement field, so the deformation fades out naturally around the face.
"""

TextureFn = Callable[
    [np.ndarray, Points, float, np.random.Generator], tuple[np.ndarray, np.ndarray]
]
"""``(canvas float32 (H, W, 3) 0..255, landmarks, strength, rng) -> (new canvas, alpha (H, W))``."""


@dataclass(frozen=True)
class Feature:
    """One synthetic facial feature.

    Attributes:
        key: short identifier used in tables (``"hypertelorism"``).
        hpo_id: HPO term id it imitates.
        hpo_name: HPO term label.
        region: the facial region it changes, in words.
        description: what the generator does, in words (nominal magnitude included).
        shape: landmark displacement, or ``None``.
        texture: canvas repaint, or ``None``.
    """

    key: str
    hpo_id: str
    hpo_name: str
    region: str
    description: str
    shape: ShapeFn | None = None
    texture: TextureFn | None = None

    @property
    def kind(self) -> str:
        """``"shape"``, ``"texture"`` or ``"shape+texture"``."""
        parts = [n for n, f in (("shape", self.shape), ("texture", self.texture)) if f is not None]
        return "+".join(parts)


# ----------------------------------------------------------------------------------------------
# Geometry helpers


def _iod(p: Points) -> float:
    right, left = mesh.eye_centres(p)
    return float(np.linalg.norm(left - right))


def _plateau(d: np.ndarray, r0: float, sigma: float) -> np.ndarray:
    """Weight 1 within ``r0``, Gaussian fall-off with ``sigma`` beyond."""
    return np.exp(-(np.maximum(d - r0, 0.0) ** 2) / (2 * sigma**2))


def _ellipse_dist(p: Points, c: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Distance from ``c`` in a metric stretched so that the ellipse (rx, ry) has radius rx."""
    q = (p - c) / np.array([1.0, ry / rx])
    return np.linalg.norm(q, axis=1)


def _midline_x(p: Points) -> float:
    right, left = mesh.eye_centres(p)
    return float((right[0] + left[0]) / 2)


IRIS = np.arange(468, 478)


def _eye_transform(p: Points, fn: Callable[[Points, np.ndarray, int], Points]) -> Points:
    """Apply a per-eye point map ``fn(points, centre, side)`` with a plateau weight around each eye.

    ``side`` is -1 for the subject's right eye (image left) and +1 for the left eye.
    """
    out = p.copy()
    iod = _iod(p)
    for side, centre in zip((-1, 1), mesh.eye_centres(p), strict=True):
        d = np.linalg.norm(p - centre, axis=1)
        w = _plateau(d, 0.2 * iod, 0.14 * iod)
        target = fn(p, centre, side)
        out += w[:, None] * (target - p)
    return out


# ----------------------------------------------------------------------------------------------
# Shape features


def _telorism(sign: float, nominal: float) -> ShapeFn:
    def shape(p: Points, s: float) -> Points:
        shift = sign * nominal * s * _iod(p)

        def move(q: Points, centre: np.ndarray, side: int) -> Points:
            return q + np.array([side * shift, 0.0])

        return _eye_transform(p, move)

    return shape


def _slant(sign: float, degrees: float) -> ShapeFn:
    def shape(p: Points, s: float) -> Points:
        def rotate(q: Points, centre: np.ndarray, side: int) -> Points:
            # Positive sign: outer canthi go down (downslanting). Image y points down.
            a = np.deg2rad(sign * side * degrees * s)
            r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            return (q - centre) @ r.T + centre

        return _eye_transform(p, rotate)

    return shape


def _short_fissure(p: Points, s: float) -> Points:
    out = p.copy()
    iod = _iod(p)
    k = 0.2 * s
    for centre in mesh.eye_centres(p):
        d = _ellipse_dist(p, centre, 0.3 * iod, 0.15 * iod)
        w = _plateau(d, 0.22 * iod, 0.1 * iod)
        w[IRIS] = 0.0  # the iris keeps its size; the lids close in around it
        dx = -(p[:, 0] - centre[0]) * k
        out[:, 0] += w * dx
    return out


def _ptosis(p: Points, s: float) -> Points:
    out = p.copy()
    iod = _iod(p)
    for upper, lower, centre in zip(
        (mesh.RIGHT_EYE_UPPER, mesh.LEFT_EYE_UPPER),
        (mesh.RIGHT_EYE_LOWER, mesh.LEFT_EYE_LOWER),
        mesh.eye_centres(p),
        strict=True,
    ):
        up, lo = p[list(upper)], p[list(lower)]
        opening = float(np.median(np.abs(up[1:-1, 1] - lo[1:-1, 1])))
        drop = 0.5 * s * opening
        half_w = 0.5 * float(np.ptp(up[:, 0]))
        # Points above the eye centre, horizontally within the fissure, down to the brow: the lid
        # and the skin above it slide down; the lid margin moves most.
        dx = np.abs(p[:, 0] - centre[0]) / max(half_w, 1e-6)
        wx = np.clip(1.0 - dx**2, 0.0, 1.0)
        lid_y = np.interp(p[:, 0], up[:, 0][np.argsort(up[:, 0])], up[:, 1][np.argsort(up[:, 0])])
        height = p[:, 1] - lid_y  # negative above the lid margin
        wy = np.where(height < 0, np.exp(-(height**2) / (2 * (0.18 * iod) ** 2)), 0.0)
        upper_idx = np.array(upper)[1:-1]
        wy[upper_idx] = 1.0
        wy[list(lower)] = 0.0
        out[:, 1] += drop * wx * wy * (p[:, 1] < centre[1] + 0.1 * iod)
        # The iris disappears under the lid instead of folding over it.
        order = np.argsort(up[:, 0])
        old_lid = np.interp(p[IRIS, 0], up[order, 0], up[order, 1])
        new_lid = np.interp(p[IRIS, 0], out[list(upper), 0][order], out[list(upper), 1][order])
        hidden = np.maximum(old_lid - p[IRIS, 1], 0.0)  # how far each iris point was under the lid
        near = np.linalg.norm(p[IRIS] - centre, axis=1) < 0.2 * iod
        out[IRIS, 1] = np.where(near, np.maximum(out[IRIS, 1], new_lid - hidden), out[IRIS, 1])
    return out


def _long_philtrum(p: Points, s: float) -> Points:
    iod = _iod(p)
    d = 0.12 * s * iod
    y_sn, y_lt = p[mesh.SUBNASALE, 1], p[mesh.UPPER_LIP_TOP, 1]
    y_lb, y_ch = p[mesh.LOWER_LIP_BOTTOM, 1], p[mesh.CHIN, 1]
    y = p[:, 1]
    t = np.interp(y, [y_sn, y_lt, y_lb, y_ch], [0.0, 1.0, 1.0, 0.0], left=0.0, right=0.0)
    cx = _midline_x(p)
    wx = _plateau(np.abs(p[:, 0] - cx), 0.45 * iod, 0.2 * iod)
    out = p.copy()
    out[:, 1] += d * t * wx
    return out


def _lip_points(upper: bool) -> tuple[list[int], list[int]]:
    outer = mesh.LIPS_UPPER_OUTER if upper else mesh.LIPS_LOWER_OUTER
    inner = mesh.LIPS_UPPER_INNER if upper else mesh.LIPS_LOWER_INNER
    return list(outer[1:-1]), list(inner[1:-1])


def _vermilion(upper: bool, factor: float) -> ShapeFn:
    """Move the outer lip line towards (factor < 0) or away from (> 0) the inner lip line."""

    def shape(p: Points, s: float) -> Points:
        outer, inner = _lip_points(upper)
        iod = _iod(p)
        delta = (p[outer] - p[inner]) * factor * s  # per outer point, along the lip's height
        out = p.copy()
        # Spread each outer point's move to its neighbourhood (skin beside the lip follows).
        dy = np.zeros(len(p))
        wsum = np.zeros(len(p))
        for k, j in enumerate(outer):
            w = np.exp(-np.sum((p - p[j]) ** 2, axis=1) / (2 * (0.06 * iod) ** 2))
            dy += w * delta[k, 1]
            wsum += w
        # Only the lip's outer side moves: points on the inner lip line stay.
        lip_mid = (p[outer, 1].mean() + p[inner, 1].mean()) / 2
        away = (p[:, 1] < lip_mid) if upper else (p[:, 1] > lip_mid)
        move = np.where(wsum > 1e-3, dy / np.maximum(wsum, 1e-9), 0.0) * np.minimum(wsum, 1.0)
        out[:, 1] += move * away
        out[outer, 1] = p[outer, 1] + delta[:, 1]
        return out

    return shape


def _mouth_width(k: float) -> ShapeFn:
    def shape(p: Points, s: float) -> Points:
        iod = _iod(p)
        cx = (p[mesh.MOUTH_RIGHT, 0] + p[mesh.MOUTH_LEFT, 0]) / 2
        cy = (p[mesh.UPPER_LIP_TOP, 1] + p[mesh.LOWER_LIP_BOTTOM, 1]) / 2
        half = abs(p[mesh.MOUTH_LEFT, 0] - p[mesh.MOUTH_RIGHT, 0]) / 2
        x, y = p[:, 0] - cx, p[:, 1] - cy
        wy = _plateau(np.abs(y), 0.1 * iod, 0.07 * iod)
        # Inside the mouth the stretch is linear; beyond the corners it fades out.
        inner = np.clip(np.abs(x) / max(half, 1e-6), 0.0, 1.0)
        fade = _plateau(np.abs(x), half, 0.15 * iod)
        dx = np.sign(x) * k * s * half * inner * fade
        out = p.copy()
        out[:, 0] += dx * wy
        return out

    return shape


def _micrognathia(p: Points, s: float) -> Points:
    iod = _iod(p)
    k = 0.35 * s
    y0 = p[mesh.LOWER_LIP_BOTTOM, 1]
    y_chin = p[mesh.CHIN, 1]
    cx = _midline_x(p)
    span = max(y_chin - y0, 1e-6)
    depth = np.clip(p[:, 1] - y0, 0.0, span)  # how far into the lower face, capped at the chin
    # Below the chin (neck) the pull fades out instead of growing.
    fade = np.exp(-(np.maximum(p[:, 1] - y_chin, 0.0) ** 2) / (2 * (0.12 * iod) ** 2))
    # ... and beside the jaw (shoulders, background) too.
    jaw_half = (abs(p[58, 0] - cx) + abs(p[288, 0] - cx)) / 2
    fade = fade * np.exp(
        -(np.maximum(np.abs(p[:, 0] - cx) - jaw_half, 0.0) ** 2) / (2 * (0.08 * iod) ** 2)
    )
    out = p.copy()
    out[:, 1] -= k * depth * fade
    # The jaw also narrows towards the chin.
    out[:, 0] -= (p[:, 0] - cx) * 0.24 * s * (depth / span) * fade
    return out


def _broad_nasal_tip(p: Points, s: float) -> Points:
    iod = _iod(p)
    c = (p[mesh.NOSE_TIP] + p[mesh.SUBNASALE]) / 2
    d = _ellipse_dist(p, c, 0.32 * iod, 0.16 * iod)
    w = _plateau(d, 0.3 * iod, 0.1 * iod)
    out = p.copy()
    out[:, 0] += w * (p[:, 0] - c[0]) * 0.3 * s
    return out


def _full_cheeks(p: Points, s: float) -> Points:
    iod = _iod(p)
    cx = _midline_x(p)
    y_eye = np.mean([c[1] for c in mesh.eye_centres(p)])
    y_mouth = p[mesh.MOUTH_RIGHT, 1]
    y_mid = y_eye + 0.6 * (y_mouth - y_eye)
    out = p.copy()
    for side, widest in ((-1, 234), (1, 454)):
        half = abs(p[widest, 0] - cx)
        ax = np.abs(p[:, 0] - cx)
        on_side = (p[:, 0] - cx) * side > 0.1 * iod
        wy = np.exp(-((p[:, 1] - y_mid) ** 2) / (2 * (0.35 * iod) ** 2))
        # Outward push, largest at the face contour, fading towards the nose and beyond the contour.
        inside = np.clip((ax - 0.2 * iod) / max(half - 0.2 * iod, 1e-6), 0.0, 1.0)
        beyond = np.exp(-(np.maximum(ax - half, 0.0) ** 2) / (2 * (0.15 * iod) ** 2))
        out[:, 0] += on_side * side * wy * inside * beyond * 0.1 * s * iod
    return out


# ----------------------------------------------------------------------------------------------
# Texture features


def _brow_colour(img: np.ndarray, p: Points) -> np.ndarray:
    """Hair colour of the brows: the darkest third of the pixels inside both brow polygons."""
    m = np.zeros(img.shape[:2], np.uint8)
    for brow in (mesh.RIGHT_BROW, mesh.LEFT_BROW):
        cv2.fillPoly(m, [np.round(p[list(brow)]).astype(np.int32)], 1)
    px = img[m > 0].reshape(-1, 3)
    lum = px.mean(1)
    dark = px[lum <= np.percentile(lum, 33)]
    return dark.mean(0) if len(dark) else np.array([40.0, 30.0, 25.0])


def _hair_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Horizontal-streak noise in [0, 1] that looks like short hairs."""
    n = rng.random(shape).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigmaX=2.0, sigmaY=0.5)
    n = (n - n.min()) / max(float(np.ptp(n)), 1e-6)
    return n


def _paint(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = img * (1 - alpha[..., None]) + colour[None, None, :] * alpha[..., None]
    return out.astype(np.float32), alpha.astype(np.float32)


def _synophrys(
    img: np.ndarray, p: Points, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    iod = _iod(p)
    h, w = img.shape[:2]
    a, b = p[mesh.RIGHT_BROW_INNER], p[mesh.LEFT_BROW_INNER]
    r_up, l_up = p[107], p[336]  # upper inner brow points
    poly = np.array([a, r_up, l_up, b])
    centre = poly.mean(0)
    poly = centre + (poly - centre) * np.array([1.15, 1.0])
    m = np.zeros((h, w), np.float32)
    cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 1.0, cv2.LINE_AA, 2)
    m = cv2.GaussianBlur(m, (0, 0), 0.05 * iod)
    # Denser at the ends (continuous with the brows), sparser in the middle.
    xs = np.arange(w, dtype=np.float32)
    mid = np.clip(np.abs(xs - centre[0]) / max(abs(b[0] - a[0]) / 2, 1e-6), 0.0, 1.0)
    density = 0.55 + 0.45 * mid[None, :]
    alpha = m * density * (0.5 + 0.5 * _hair_noise((h, w), rng)) * min(0.9, 0.7 * s)
    return _paint(img, alpha, _brow_colour(img, p))


def _thick_brows(
    img: np.ndarray, p: Points, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    iod = _iod(p)
    h, w = img.shape[:2]
    m = np.zeros((h, w), np.float32)
    for brow in (mesh.RIGHT_BROW, mesh.LEFT_BROW):
        pts = p[list(brow)]
        c = pts.mean(0)
        grown = c + (pts - c) * np.array([1.05, 1.0 + 0.7 * s])  # thicker, mostly vertically
        cv2.fillPoly(m, [np.round(grown * 4).astype(np.int32)], 1.0, cv2.LINE_AA, 2)
    m = cv2.GaussianBlur(m, (0, 0), 0.04 * iod)
    alpha = m * (0.55 + 0.45 * _hair_noise((h, w), rng)) * min(0.9, 0.7 * s)
    return _paint(img, alpha, _brow_colour(img, p) * 0.85)


# ----------------------------------------------------------------------------------------------
# The feature catalogue

FEATURES: tuple[Feature, ...] = (
    Feature("hypertelorism", "HP:0000316", "Hypertelorism", "eyes (position)",
            "both eye regions move apart, 7% of the IOD each at s=1", shape=_telorism(1.0, 0.07)),
    Feature("hypotelorism", "HP:0000601", "Hypotelorism", "eyes (position)",
            "both eye regions move together, 6% of the IOD each at s=1", shape=_telorism(-1.0, 0.06)),
    Feature("downslanted_pf", "HP:0000494", "Downslanted palpebral fissures", "eyes (axis)",
            "each eye region rotates about its centre, outer canthus down by 11 degrees at s=1",
            shape=_slant(1.0, 11.0)),
    Feature("upslanted_pf", "HP:0000582", "Upslanted palpebral fissure", "eyes (axis)",
            "each eye region rotates about its centre, outer canthus up by 11 degrees at s=1",
            shape=_slant(-1.0, 11.0)),
    Feature("short_pf", "HP:0012745", "Short palpebral fissure", "eyes (fissure length)",
            "eye fissures shortened horizontally by 20% at s=1 (iris unchanged)", shape=_short_fissure),
    Feature("ptosis", "HP:0000508", "Ptosis", "upper eyelids",
            "upper lid margins and the skin above them drop by half of the eye opening at s=1",
            shape=_ptosis),
    Feature("synophrys", "HP:0000664", "Synophrys", "glabella (between the brows)",
            "brow-coloured hair-like paint joins the brows (opacity 0.7 at s=1)", texture=_synophrys),
    Feature("thick_eyebrow", "HP:0000574", "Thick eyebrow", "eyebrows",
            "brows repainted 70% taller in their own hair colour at s=1", texture=_thick_brows),
    Feature("long_philtrum", "HP:0000343", "Long philtrum", "philtrum, mouth, chin",
            "mouth moves down by 12% of the IOD at s=1 (philtrum stretched, chin compressed)",
            shape=_long_philtrum),
    Feature("thin_upper_lip", "HP:0000219", "Thin upper lip vermilion", "upper lip",
            "outer upper-lip line moves 45% of the way to the inner line at s=1",
            shape=_vermilion(True, -0.45)),
    Feature("thick_lower_lip", "HP:0000179", "Thick lower lip vermilion", "lower lip",
            "outer lower-lip line moves outwards by 50% of the vermilion height at s=1",
            shape=_vermilion(False, 0.5)),
    Feature("wide_mouth", "HP:0000154", "Wide mouth", "mouth (width)",
            "mouth widened by 22% at s=1", shape=_mouth_width(0.22)),
    Feature("narrow_mouth", "HP:0000160", "Narrow mouth", "mouth (width)",
            "mouth narrowed by 18% at s=1", shape=_mouth_width(-0.18)),
    Feature("micrognathia", "HP:0000347", "Micrognathia", "lower jaw and chin",
            "face below the lower lip compressed vertically by 35% and the jaw narrowed by up to 24% at s=1",
            shape=_micrognathia),
    Feature("broad_nasal_tip", "HP:0000455", "Broad nasal tip", "nasal tip and alae",
            "nasal tip region widened by 30% at s=1", shape=_broad_nasal_tip),
    Feature("full_cheeks", "HP:0000293", "Full cheeks", "cheeks",
            "cheek contours pushed outwards by 10% of the IOD at s=1", shape=_full_cheeks),
)  # fmt: skip

FEATURES_BY_KEY: dict[str, Feature] = {f.key: f for f in FEATURES}


def get_feature(key: str) -> Feature:
    """The feature called ``key``; ``ValueError`` naming the known keys otherwise."""
    try:
        return FEATURES_BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown feature {key!r}; known: {sorted(FEATURES_BY_KEY)}") from None


__all__ = [
    "FEATURES",
    "FEATURES_BY_KEY",
    "STRENGTH_RANGE",
    "Feature",
    "get_feature",
]
