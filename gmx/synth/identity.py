"""Synthetic identities: convex mixtures of at least five real source faces.

An identity's texture is a Dirichlet-weighted mean of source textures (all already warped onto the
bank's mean shape) and its shape is the same-weighted mean of the source shapes, pushed away from
the population mean (mixing shrinks shapes towards the mean) and given a per-identity skin-tone and
colour shift. With at least five sources of at least 5% weight each and no source above 40%, no
identity is the face of a real person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmx._typing import Points
from gmx.synth import mesh
from gmx.synth.sources import CANVAS, SourceBank, close_mouth

#: Mixing rules (checked by tests and at build time).
MIN_SOURCES = 5
MIN_WEIGHT = 0.05
MAX_WEIGHT = 0.40


@dataclass(frozen=True)
class Identity:
    """One synthetic person.

    Attributes:
        sources: indices into the bank's faces, ``(K,)`` int.
        weights: mixing weights, ``(K,)`` float64, sum 1, each in ``[MIN_WEIGHT, MAX_WEIGHT]``.
        shape: ``(478, 2)`` float64 landmarks on the canonical canvas (mouth closed).
        shape_gain: how far the mixed shape was pushed from the bank mean (1 = not at all).
        tone: ``(3,)`` float64 per-identity multiplicative RGB gains of the face colour.
    """

    sources: np.ndarray
    weights: np.ndarray
    shape: Points
    shape_gain: float
    tone: np.ndarray


def sample_identity(
    bank: SourceBank, rng: np.random.Generator, n_sources: int = 6, alpha: float = 0.8
) -> Identity:
    """Draw one identity.

    Args:
        bank: source faces.
        rng: random generator (the only source of randomness).
        n_sources: number of mixed faces, at least :data:`MIN_SOURCES`.
        alpha: Dirichlet concentration (smaller = one face dominates more, within the caps).
    """
    if n_sources < MIN_SOURCES:
        raise ValueError(f"n_sources must be >= {MIN_SOURCES}, got {n_sources}")
    if len(bank) < n_sources:
        raise ValueError(f"the bank has {len(bank)} faces, fewer than n_sources={n_sources}")
    sources = np.sort(rng.choice(len(bank), size=n_sources, replace=False))
    for _ in range(1000):
        w = rng.dirichlet(np.full(n_sources, alpha))
        if w.min() >= MIN_WEIGHT and w.max() <= MAX_WEIGHT:
            break
    else:  # pragma: no cover - practically unreachable for alpha around 1
        w = np.full(n_sources, 1.0 / n_sources)
    mixed = np.tensordot(w, bank.shapes[sources], axes=1)
    gain = float(rng.uniform(1.4, 2.0))
    shape = close_mouth(bank.mean_shape + gain * (mixed - bank.mean_shape))
    tone = np.exp(rng.normal(0.0, [0.08, 0.07, 0.08]) + rng.normal(0.0, 0.12))
    return Identity(sources=sources, weights=w, shape=shape, shape_gain=gain, tone=tone)


def identity_texture(bank: SourceBank, identity: Identity) -> np.ndarray:
    """The identity's texture on the bank's mean shape, ``(CANVAS, CANVAS, 3)`` float32 in 0..255."""
    tex = np.tensordot(identity.weights, bank.textures[identity.sources].astype(np.float32), axes=1)
    tex = tex * identity.tone.astype(np.float32)
    return np.clip(tex, 0, 255).astype(np.float32)


def canvas_anchor(shape: Points) -> Points:
    """Augmented anchor set of a canonical shape (mesh + rings + canvas border)."""
    return mesh.augment(shape, mesh.border_points(CANVAS))


__all__ = [
    "MAX_WEIGHT",
    "MIN_SOURCES",
    "MIN_WEIGHT",
    "Identity",
    "canvas_anchor",
    "identity_texture",
    "sample_identity",
]
