"""A contact sheet of the demo data: a row per class, ground-truth masks outlined."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from gmx._typing import ImageU8
from gmx.synth.dataset import DemoData

#: Colour of a ground-truth region outline (RGB).
OUTLINE_COLOUR: tuple[int, int, int] = (0, 255, 0)


def draw_outline(
    image: ImageU8,
    mask: np.ndarray,
    colour: tuple[int, int, int] = OUTLINE_COLOUR,
    thickness: int = 1,
) -> ImageU8:
    """A copy of ``image`` with the outer outline of the bool ``mask`` drawn on it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(h, w)`` bool region (resized to the image with nearest neighbours if needed).
        colour: RGB of the line.
        thickness: line width in image pixels.

    Returns:
        ``(H, W, 3)`` uint8 RGB; ``image`` is not modified. An empty mask draws nothing.
    """
    img = np.ascontiguousarray(np.asarray(image, np.uint8)).copy()
    m = np.asarray(mask).astype(np.uint8)
    if m.ndim != 2 or img.ndim != 3:
        raise ValueError(f"need an (H, W, 3) image and an (h, w) mask, got {img.shape}, {m.shape}")
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    cnts, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(img, cnts, -1, tuple(int(c) for c in colour), thickness)
    return img


def montage(data: DemoData, per_class: int = 8, scale: int = 1, outline: bool = True) -> ImageU8:
    """One row per class (table order), the first ``per_class`` images of distinct subjects.

    Args:
        data: the demo data.
        per_class: images per row.
        scale: integer up-scaling of every tile.
        outline: draw the ground-truth mask outline (green) on a second copy of each tile.

    Returns:
        ``(H, W, 3)`` uint8 RGB sheet with a label column on the left.
    """
    if per_class < 1 or scale < 1:
        raise ValueError(f"per_class and scale must be >= 1, got {per_class}, {scale}")
    t = 112 * scale
    label_w = 230
    reps = 2 if outline else 1
    rows = []
    for syn in data.syndromes:
        idx = np.flatnonzero(data.labels == syn.syndrome_id)
        seen: set[str] = set()
        chosen = []
        for i in idx:
            if data.subject_ids[i] not in seen:
                seen.add(str(data.subject_ids[i]))
                chosen.append(int(i))
            if len(chosen) == per_class:
                break
        row = np.full((t, label_w + per_class * t * reps, 3), 255, np.uint8)
        for k, i in enumerate(chosen):
            img = cv2.resize(data.images[i], (t, t), interpolation=cv2.INTER_NEAREST)
            x = label_w + k * t * reps
            row[:, x : x + t] = img
            if outline:
                row[:, x + t : x + 2 * t] = draw_outline(img, data.masks[i])
        pil = Image.fromarray(row)
        draw = ImageDraw.Draw(pil)
        words = syn.name.replace(" (", "\n(").replace(" + ", " +\n")
        draw.multiline_text((4, 4), f"{syn.syndrome_id} [{syn.group}]\n{words}", fill=(0, 0, 0))
        rows.append(np.asarray(pil))
    return np.concatenate(rows, axis=0)


__all__ = ["OUTLINE_COLOUR", "draw_outline", "montage"]
