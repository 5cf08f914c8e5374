from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gmx.constants import GESTALT_SCORE_OFFSET, NEAR_DUPLICATE_DISTANCE
from gmx.gallery import Gallery, GalleryImage, Syndrome, rank, to_service_json
from gmx.variants import Variant

from ._gallery_fixtures import EMBEDDINGS, MEAN, PER_VARIANT, QUERY, make_tiny, random_gallery


def test_distances_are_hand_computed(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    np.testing.assert_allclose(r.per_variant_distances, PER_VARIANT, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.image_distances, MEAN, rtol=0, atol=1e-12)
    assert r.image_order.tolist() == [0, 5, 2, 3, 1, 4]
    assert r.kept.all()


def test_syndromes_by_nearest_image(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    got = [(m.rank, m.syndrome_id, m.image_id, m.subject_id, m.image_index) for m in r.syndromes]
    assert got == [(1, "A", "a1", "s1", 0), (2, "C", "c2", "s5", 5), (3, "B", "b1", "s2", 2)]
    assert [m.distance for m in r.syndromes] == pytest.approx([0.0, 0.2, 0.4], abs=1e-12)
    for m in r.syndromes:
        assert m.gestalt_score == pytest.approx(GESTALT_SCORE_OFFSET - m.distance, abs=1e-15)
    a = r.syndrome("A")
    assert a is not None and a.name == "Alpha syndrome" and a.omim == "100100"
    assert r.syndrome("nope") is None


def test_genes_and_patients(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    # A lists G1, G2 (image a1, 0.0); C has no genes; B adds only G3 (G2 already seen) via b1 at 0.4.
    assert [(g.rank, g.gene, g.syndrome_id, g.image_id) for g in r.genes] == [
        (1, "G1", "A", "a1"),
        (2, "G2", "A", "a1"),
        (3, "G3", "B", "b1"),
    ]
    assert [g.distance for g in r.genes] == pytest.approx([0.0, 0.0, 0.4], abs=1e-12)
    # s1 has two photos (a1 at 0.0, a2 at 1.0): listed once, by its nearest.
    assert [(p.subject_id, p.image_id) for p in r.patients] == [
        ("s1", "a1"),
        ("s5", "c2"),
        ("s2", "b1"),
        ("s3", "b2"),
        ("s4", "c1"),
    ]
    assert [p.distance for p in r.patients] == pytest.approx([0.0, 0.2, 0.4, 0.5, 2.0], abs=1e-12)
    assert r.patients[1].syndrome_name == "Gamma syndrome"


def test_near_duplicates_dropped(tiny: Gallery) -> None:
    r = rank(QUERY, tiny, min_distance=NEAR_DUPLICATE_DISTANCE)
    # a1 (0.0) and c2 (0.2) are <= 0.3: dropped before syndromes are formed.
    assert r.kept.tolist() == [False, True, True, True, True, False]
    assert r.image_order.tolist() == [2, 3, 1, 4]
    assert [(m.syndrome_id, m.image_id) for m in r.syndromes] == [
        ("B", "b1"),
        ("A", "a2"),
        ("C", "c1"),
    ]
    assert [m.distance for m in r.syndromes] == pytest.approx([0.4, 1.0, 2.0], abs=1e-12)
    # distances of dropped images are still reported
    assert r.image_distances[0] == pytest.approx(0.0, abs=1e-12)


def test_min_distance_boundary_is_inclusive(tiny: Gallery) -> None:
    # a2 is at exactly 1.0 (orthogonal in both variants): "<= min_distance" drops it.
    r = rank(QUERY, tiny, min_distance=1.0)
    assert r.image_order.tolist() == [4]
    assert [m.syndrome_id for m in r.syndromes] == ["C"]
    r = rank(QUERY, tiny, min_distance=0.9999)
    assert r.image_order.tolist() == [1, 4]


def test_distances_averaged_not_embeddings(tiny: Gallery) -> None:
    # a2's variants are each orthogonal to the query's (distance 1.0), but the variant-averaged
    # embeddings of query and a2 are both (0.5, 0.5): averaging embeddings would call it identical.
    r = rank(QUERY, tiny)
    assert r.image_distances[1] == pytest.approx(1.0, abs=1e-12)
    q_mean, g_mean = QUERY.mean(axis=0), EMBEDDINGS[1].mean(axis=0)
    cos = q_mean @ g_mean / (np.linalg.norm(q_mean) * np.linalg.norm(g_mean))
    assert math.isclose(1 - cos, 0.0, abs_tol=1e-6)


def test_variant_mask(tiny: Gallery) -> None:
    r = rank(QUERY, tiny, variant_mask=[True, False])
    np.testing.assert_allclose(r.image_distances, PER_VARIANT[0], atol=1e-12)
    # a1 and b2 tie at 0.0: stable order keeps a1 first.
    assert r.image_order.tolist() == [0, 3, 5, 2, 1, 4]
    assert [m.syndrome_id for m in r.syndromes] == ["A", "B", "C"]
    np.testing.assert_allclose(
        r.per_variant_distances, PER_VARIANT, atol=1e-12
    )  # full breakdown kept
    assert rank(QUERY, tiny, variant_mask=[1]).image_order.tolist() == [0, 5, 2, 1, 3, 4]
    with pytest.raises(ValueError, match="selects no variant"):
        rank(QUERY, tiny, variant_mask=[False, False])
    with pytest.raises(ValueError, match="shape"):
        rank(QUERY, tiny, variant_mask=[True])


def test_ties_keep_gallery_order() -> None:
    syns = (Syndrome("X", "x"), Syndrome("Y", "y"))
    emb = np.array([[[1.0, 1.0]], [[2.0, 2.0]]], dtype=np.float32)  # same direction: tied distances

    def gal(images: tuple[GalleryImage, ...], e: np.ndarray) -> Gallery:
        return Gallery("tie", "1", images, syns, e, (Variant(0),), "t")

    a = gal((GalleryImage("i1", "p1", "X"), GalleryImage("i2", "p2", "Y")), emb)
    b = gal((GalleryImage("i2", "p2", "Y"), GalleryImage("i1", "p1", "X")), emb[::-1])
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    ra, rb = rank(q, a), rank(q, b)
    assert ra.syndromes[0].distance == rb.syndromes[0].distance == ra.syndromes[1].distance
    assert [m.syndrome_id for m in ra.syndromes] == ["X", "Y"]
    assert [m.syndrome_id for m in rb.syndromes] == ["Y", "X"]


def test_exclude_subjects_and_top_k(tiny: Gallery) -> None:
    r = rank(QUERY, tiny, exclude_subjects=["s1"], top_k=2)
    assert not r.kept[0] and not r.kept[1]
    assert [m.syndrome_id for m in r.syndromes] == ["C", "B"]
    assert len(r.patients) == 2 and len(r.genes) == 2
    assert [g.gene for g in r.genes] == ["G2", "G3"]
    assert r.image_distances.shape == (6,)


def test_zero_vectors_are_orthogonal() -> None:
    g = make_tiny(
        embeddings=np.where(np.arange(6)[:, None, None] == 4, 0.0, EMBEDDINGS).astype(np.float32)
    )
    r = rank(QUERY, g)
    assert r.image_distances[4] == pytest.approx(1.0)
    r0 = rank(np.zeros((2, 2), np.float32), g)
    np.testing.assert_allclose(r0.image_distances, 1.0)


def test_scale_invariance(tiny: Gallery) -> None:
    r1 = rank(QUERY, tiny)
    r2 = rank(QUERY * 123.5, make_tiny(embeddings=EMBEDDINGS * 7))
    np.testing.assert_allclose(r1.image_distances, r2.image_distances, atol=1e-6)


def test_bad_queries(tiny: Gallery) -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        rank(np.zeros((3, 2)), tiny)
    with pytest.raises(ValueError, match="NaN"):
        rank(np.array([[np.nan, 0], [0, 1]]), tiny)
    with pytest.raises(ValueError, match="top_k"):
        rank(QUERY, tiny, top_k=-1)


def test_outputs_read_only_and_inputs_untouched(tiny: Gallery) -> None:
    q = QUERY.copy()
    before = tiny.embeddings.copy()
    r = rank(q, tiny, min_distance=0.3)
    np.testing.assert_array_equal(q, QUERY)
    np.testing.assert_array_equal(tiny.embeddings, before)
    for arr in (r.image_distances, r.per_variant_distances, r.image_order, r.kept, r.variant_mask):
        assert not arr.flags.writeable


def _reference_rank(query: np.ndarray, gallery: Gallery) -> tuple[list[float], list[str]]:
    """Plain-Python re-statement of the upstream definition (loops, float64, stable ties)."""
    means = []
    for i in range(len(gallery)):
        ds = []
        for v in range(gallery.n_variants):
            a = query[v].astype(np.float64)
            b = gallery.embeddings[i, v].astype(np.float64)
            ds.append(1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        means.append(sum(ds) / len(ds))
    order = sorted(range(len(means)), key=lambda i: (means[i], i))
    seen: list[str] = []
    for i in order:
        s = gallery.images[i].syndrome_id
        if s not in seen:
            seen.append(s)
    return means, seen


def test_matches_reference_on_random_gallery() -> None:
    g = random_gallery(n=60, v=3, d=16, n_syn=7, seed=3)
    q = np.random.default_rng(4).standard_normal((3, 16)).astype(np.float32)
    means, syn_order = _reference_rank(q, g)
    r = rank(q, g)
    np.testing.assert_allclose(r.image_distances, means, atol=1e-6)
    assert [m.syndrome_id for m in r.syndromes] == syn_order
    assert [m.rank for m in r.syndromes] == list(range(1, len(syn_order) + 1))


def test_service_json(tiny: Gallery) -> None:
    r = rank(QUERY, tiny, min_distance=NEAR_DUPLICATE_DISTANCE)
    out = to_service_json(r, case_id="case1", model_version="m1", gallery_version="t1", top_k=2)
    json.dumps(out)  # serialisable
    assert set(out) == {
        "case_id",
        "model_version",
        "gallery_version",
        "suggested_syndromes_list",
        "suggested_genes_list",
        "suggested_patients_list",
        "gmx",
    }
    assert out["case_id"] == "case1" and out["gallery_version"] == "t1"
    syn = out["suggested_syndromes_list"]
    assert syn == [
        {
            "syndrome_name": "Beta syndrome",
            "omim_id": "",
            "distance": 0.4,
            "gestalt_score": 0.9,
            "image_id": "b1",
            "subject_id": "s2",
        },
        {
            "syndrome_name": "Alpha syndrome",
            "omim_id": 100100,
            "distance": 1.0,
            "gestalt_score": 0.3,
            "image_id": "a2",
            "subject_id": "s1",
        },
    ]
    genes = out["suggested_genes_list"]
    assert [(g["gene_name"], g["gene_entrez_id"]) for g in genes] == [("G2", None), ("G3", None)]
    assert out["suggested_patients_list"][0]["subject_id"] == "s2"
    extra = out["gmx"]
    assert extra["n_images_dropped"] == 2 and extra["min_distance"] == pytest.approx(0.3)
    assert extra["syndromes"][0]["per_variant_distance"] == pytest.approx([0.4, 0.4])
    assert extra["variants"] == ["m0 plain", "m0 flip"]
    full = to_service_json(r, case_id="c", model_version="m", gallery_version="g")
    assert len(full["suggested_syndromes_list"]) == 3


def test_exclude_subjects_must_be_a_sequence(tiny: Gallery) -> None:
    with pytest.raises(ValueError, match="not the string"):
        rank(QUERY, tiny, exclude_subjects="s1")  # type: ignore[arg-type]
