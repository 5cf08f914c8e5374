"""One synthetic patient: identity + syndrome features -> canonical face + ground-truth mask -> photos.

Ground truth. For a patient with features, the generator also renders the *reference* face: the same
identity without the features, through the same single piecewise-affine warp from the identity's
texture (so both faces share all resampling; pixels the features do not touch are bit-identical).
The canvas mask is the union of

* pixels whose colour differs from the reference by more than ``DIFF_THRESHOLD`` grey levels,
* pixels whose sampling position in the identity's texture moved by more than ``MOVE_THRESHOLD``
  pixels (uniform skin that slid without changing colour still counts as changed),
* pixels where a texture feature painted with opacity above ``ALPHA_THRESHOLD``,

closed (3x3) to fill pin-holes. Each photo carries it through the photo's homography and the
alignment transform of the *reference* photo (so the features cannot move the crop) into the 112x112
template, where it is binarised (coverage > 0.3), joined by the pixels the photo's blur and JPEG
changed by more than ``SPILL_THRESHOLD`` grey levels, closed and dilated by one pixel (see
:func:`photograph`). The unaffected cohort has an empty mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from gmx._typing import ImageU8
from gmx.align.geometry import warp_to_template
from gmx.constants import TEMPLATE_SIZE
from gmx.synth import mesh
from gmx.synth.features import STRENGTH_RANGE
from gmx.synth.identity import Identity, canvas_anchor, identity_texture, sample_identity
from gmx.synth.render import PhotoParams, render_photo, warp_mask
from gmx.synth.sources import CANVAS, SourceBank
from gmx.synth.syndromes import SyntheticSyndrome

DIFF_THRESHOLD = 6.0
MOVE_THRESHOLD = 1.0
ALPHA_THRESHOLD = 0.03
#: Grey levels (any channel) by which an aligned patient image must differ from the aligned
#: reference photo for a template pixel to join the mask (blur and JPEG spill of the features).
SPILL_THRESHOLD = 2
#: Side of the square closing that fills the pin-holes the JPEG blocks leave in the spill, pixels.
SPILL_CLOSING = 5


class Aligner(Protocol):
    """What the generator needs from :class:`gmx.align.FaceAligner`."""

    def align(self, rgb: ImageU8) -> Any:  # pragma: no cover - protocol
        """Return an object with ``.faces`` (largest first), each with ``.image`` and ``.transform``."""


@dataclass(frozen=True)
class Renderer:
    """The bank plus its fixed triangulation (built once per bank)."""

    bank: SourceBank
    tri: mesh.Triangulation

    @classmethod
    def from_bank(cls, bank: SourceBank) -> Renderer:
        """Triangulate the bank's mean shape (with rings and canvas border)."""
        return cls(bank, mesh.Triangulation.from_points(canvas_anchor(bank.mean_shape)))

    def maps(self, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backward maps canvas -> identity texture for a face whose mesh + rings are ``moving``.

        Args:
            moving: ``(478 + 72, 2)`` mesh landmarks and outer rings (see :func:`moving_points`);
                the canvas border stays fixed.
        """
        dst = np.concatenate([moving, mesh.border_points(CANVAS)])
        return mesh.warp_maps(canvas_anchor(self.bank.mean_shape), dst, self.tri, (CANVAS, CANVAS))


def moving_points(shape: np.ndarray) -> np.ndarray:
    """Mesh landmarks plus their outer rings, ``(550, 2)``: the points feature warps move."""
    return np.concatenate([shape, mesh.rings(shape)])


@dataclass(frozen=True)
class SynthFace:
    """A patient's face on the canonical canvas.

    Attributes:
        identity: the synthetic identity.
        syndrome: its syndrome (or the unaffected cohort).
        strengths: feature key -> strength.
        shape: ``(478, 2)`` landmarks after the features' warps.
        canvas: ``(CANVAS, CANVAS, 3)`` uint8 RGB face with the features.
        reference: the same face without features (equal to ``canvas`` when unaffected).
        mask: ``(CANVAS, CANVAS)`` bool ground-truth region of the features.
        texture_seed: seed of the texture features' noise.
    """

    identity: Identity
    syndrome: SyntheticSyndrome
    strengths: Mapping[str, float]
    shape: np.ndarray
    canvas: ImageU8
    reference: ImageU8
    mask: np.ndarray
    texture_seed: int = 0


@dataclass(frozen=True)
class SynthImage:
    """One aligned photo of a patient.

    Attributes:
        image: ``(112, 112, 3)`` uint8 RGB, aligned by the real pipeline.
        mask: ``(112, 112)`` bool ground truth in template coordinates.
        transform: ``(2, 3)`` photo -> template affine from the aligner.
        homography: ``(3, 3)`` canvas -> photo.
        params: the photo conditions.
    """

    image: ImageU8
    mask: np.ndarray
    transform: np.ndarray
    homography: np.ndarray
    params: PhotoParams


def _to_u8(img: np.ndarray) -> ImageU8:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_face(
    renderer: Renderer,
    syndrome: SyntheticSyndrome,
    identity: Identity,
    strengths: Mapping[str, float],
    texture_seed: int,
) -> SynthFace:
    """Render a patient's canonical face, its reference (no features) and the ground-truth mask.

    Args:
        renderer: bank + triangulation.
        syndrome: which features to apply (in table order).
        identity: the person.
        strengths: strength per feature key of ``syndrome``.
        texture_seed: seed of texture-feature noise.
    """
    missing = set(syndrome.features) - set(strengths)
    if missing:
        raise ValueError(f"strengths lack features {sorted(missing)} of {syndrome.syndrome_id}")
    tex = identity_texture(renderer.bank, identity)
    base = moving_points(identity.shape)
    ref_maps = renderer.maps(base)
    reference = cv2.remap(
        tex, ref_maps[0], ref_maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    moved = base
    for feat in syndrome.feature_objects:
        if feat.shape is not None:
            moved = feat.shape(moved, strengths[feat.key])
    shape = moved[: identity.shape.shape[0]]
    if moved is base:
        maps, img = ref_maps, reference
    else:
        maps = renderer.maps(moved)
        img = cv2.remap(tex, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rng = np.random.default_rng(texture_seed)
    alpha = np.zeros((CANVAS, CANVAS), np.float32)
    for feat in syndrome.feature_objects:
        if feat.texture is not None:
            img, a = feat.texture(img, shape, strengths[feat.key], rng)
            alpha = np.maximum(alpha, a)
    canvas, ref_u8 = _to_u8(img), _to_u8(reference)
    if syndrome.is_unaffected:
        mask = np.zeros((CANVAS, CANVAS), bool)
    else:
        diff = np.abs(canvas.astype(np.int16) - ref_u8.astype(np.int16)).max(axis=2)
        shift = np.hypot(maps[0] - ref_maps[0], maps[1] - ref_maps[1])
        m = (diff > DIFF_THRESHOLD) | (shift > MOVE_THRESHOLD) | (alpha > ALPHA_THRESHOLD)
        m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        mask = m.astype(bool)
    return SynthFace(identity, syndrome, dict(strengths), shape, canvas, ref_u8, mask, texture_seed)


def sample_face(
    renderer: Renderer, syndrome: SyntheticSyndrome, rng: np.random.Generator
) -> SynthFace:
    """Draw an identity and feature strengths, then :func:`make_face`."""
    identity = sample_identity(renderer.bank, rng)
    lo, hi = STRENGTH_RANGE
    strengths = {k: round(float(rng.uniform(lo, hi)), 4) for k in syndrome.features}
    return make_face(renderer, syndrome, identity, strengths, int(rng.integers(0, 2**31 - 1)))


def template_homography(transform: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """``(3, 3)`` canvas -> template: the aligner's ``(2, 3)`` photo -> template after the photo's."""
    a = np.vstack([np.asarray(transform, np.float64), [0.0, 0.0, 1.0]])
    return a @ homography


def photograph(
    face: SynthFace, params: PhotoParams, aligner: Aligner
) -> tuple[SynthImage | None, str | None]:
    """Render one photo of ``face`` and align it on the *reference* face's landmarks.

    The patient's photo and the photo of its reference face (same identity, no features) are
    rendered with the same homography and photo conditions. The real pipeline aligns the reference
    photo, and its photo -> template transform crops the patient's photo: the crop cannot depend
    on the features (hypertelorism would otherwise move the eye landmarks, hence the crop's scale
    and position, and leak the label into every pixel). The template mask is the canvas mask carried
    through the same transform (coverage > 0.3), plus every pixel where the aligned patient image
    differs from the aligned reference photo by more than ``SPILL_THRESHOLD`` grey levels (blur
    and JPEG carry a feature's change a few pixels beyond it), closed with a ``SPILL_CLOSING``
    square (JPEG blocks leave pin-holes) and dilated by one pixel.

    Returns:
        ``(image, None)`` or ``(None, reason)`` when the aligner finds no face in the reference photo.
    """
    ref_photo, h = render_photo(face.reference, params)
    affected = not np.array_equal(face.canvas, face.reference)
    photo = render_photo(face.canvas, params)[0] if affected else ref_photo
    result = aligner.align(ref_photo)
    faces = tuple(getattr(result, "faces", ()))
    if not faces:
        return None, str(getattr(result, "message", None) or "no face found")
    transform = np.asarray(faces[0].transform, np.float64)
    image = warp_to_template(photo, transform, TEMPLATE_SIZE)
    mask = warp_mask(face.mask, template_homography(transform, h), TEMPLATE_SIZE)
    if affected:
        ref_image = warp_to_template(ref_photo, transform, TEMPLATE_SIZE)
        spill = np.abs(image.astype(np.int16) - ref_image.astype(np.int16)).max(axis=2)
        kernel = np.ones((SPILL_CLOSING, SPILL_CLOSING), np.uint8)
        mask = cv2.morphologyEx(
            (mask | (spill > SPILL_THRESHOLD)).astype(np.uint8), cv2.MORPH_CLOSE, kernel
        )
        mask = mask.astype(bool)
    if mask.any():
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return SynthImage(image, mask, transform, h, params), None


__all__ = [
    "ALPHA_THRESHOLD",
    "DIFF_THRESHOLD",
    "MOVE_THRESHOLD",
    "SPILL_CLOSING",
    "SPILL_THRESHOLD",
    "Aligner",
    "Renderer",
    "SynthFace",
    "SynthImage",
    "make_face",
    "photograph",
    "sample_face",
    "template_homography",
]
