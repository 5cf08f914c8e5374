"""A tiny hand-made gallery: 6 images, 3 syndromes, 5 patients, 2 variants, 2-d embeddings.

Query ``QUERY`` has variant 0 = (1, 0) and variant 1 = (0, 1). Per image (variant-0 vector, variant-1
vector) -> per-variant cosine distances -> mean:

    i0 a1 s1 A  (1, 0)  (0, 2)   0.0  0.0  -> 0.0
    i1 a2 s1 A  (0, 1)  (1, 0)   1.0  1.0  -> 1.0
    i2 b1 s2 B  (3, 4)  (4, 3)   0.4  0.4  -> 0.4
    i3 b2 s3 B  (1, 0)  (-1, 0)  0.0  1.0  -> 0.5
    i4 c1 s4 C  (-1, 0) (0, -1)  2.0  2.0  -> 2.0
    i5 c2 s5 C  (4, 3)  (3, 4)   0.2  0.2  -> 0.2
"""

from __future__ import annotations

import sqlite3

import numpy as np

from gmx.gallery import Gallery, GalleryImage, Syndrome, _storage
from gmx.variants import Variant

QUERY = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)

EMBEDDINGS = np.array(
    [
        [[1, 0], [0, 2]],
        [[0, 1], [1, 0]],
        [[3, 4], [4, 3]],
        [[1, 0], [-1, 0]],
        [[-1, 0], [0, -1]],
        [[4, 3], [3, 4]],
    ],
    dtype=np.float32,
)

PER_VARIANT = np.array(
    [
        [0.0, 1.0, 0.4, 0.0, 2.0, 0.2],
        [0.0, 1.0, 0.4, 1.0, 2.0, 0.2],
    ]
)
MEAN = np.array([0.0, 1.0, 0.4, 0.5, 2.0, 0.2])

SYNDROMES = (
    Syndrome("A", "Alpha syndrome", "100100", ("G1", "G2"), ("HP:0000316",)),
    Syndrome("B", "Beta syndrome", None, ("G2", "G3")),
    Syndrome("C", "Gamma syndrome", "300300"),
)

IMAGES = (
    GalleryImage("a1", "s1", "A"),
    GalleryImage("a2", "s1", "A"),
    GalleryImage("b1", "s2", "B", "0"),
    GalleryImage("b2", "s3", "B", "1,2"),
    GalleryImage("c1", "s4", "C"),
    GalleryImage("c2", "s5", "C", "2"),
)

VARIANTS = (Variant(0, False, False), Variant(0, True, False))


def make_tiny(**changes: object) -> Gallery:
    kwargs: dict[str, object] = dict(
        name="tiny",
        version="t1",
        images=IMAGES,
        syndromes=SYNDROMES,
        embeddings=EMBEDDINGS.copy(),
        variants=VARIANTS,
        model_fingerprint="f" * 64,
        description="hand-made test gallery",
        provenance="tests/gallery/conftest.py",
    )
    kwargs.update(changes)
    return Gallery(**kwargs)  # type: ignore[arg-type]


def random_gallery(n: int, v: int, d: int, n_syn: int, seed: int = 0) -> Gallery:
    rng = np.random.default_rng(seed)
    syns = tuple(
        Syndrome(f"S{k}", f"syndrome {k}", str(100000 + k), (f"GENE{k}", f"GENE{(k + 1) % n_syn}"))
        for k in range(n_syn)
    )
    labels = rng.integers(0, n_syn, size=n)
    images = tuple(GalleryImage(f"img{i}", f"sub{i // 2}", f"S{labels[i]}") for i in range(n))
    emb = rng.standard_normal((n, v, d)).astype(np.float32)
    variants = tuple(Variant(m, f, g) for m in range(v) for f, g in ((False, False),))[:v]
    return Gallery("rand", "r1", images, syns, emb, variants, "r" * 64)


def resign(con: sqlite3.Connection) -> None:
    """Record the metadata checksum of a hand-edited file, as a (future) gmx that wrote it would."""
    con.execute(
        "UPDATE meta SET value=? WHERE key=?",
        (_storage.metadata_digest(con), _storage.METADATA_KEY),
    )
