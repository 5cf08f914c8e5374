"""Batch runs refuse models that did not embed the gallery; summaries follow the picture policy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gmx.aggregate import SyndromeMap, SyndromeResults, load_batch, run_batch, summarize
from gmx.encode import LoadedModel
from gmx.errors import GalleryError
from gmx.gallery import MIN_COMPOSITE_SUBJECTS, GalleryImage, composite_face, gallery_face

METHODS = ("gradcam",)


def _other_model(model: LoadedModel) -> LoadedModel:
    """The same module and card under another weights fingerprint (as other weights would have)."""
    return dataclasses.replace(model, fingerprint="other-weights")


def test_batch_run_refuses_another_model_for_an_existing_run(tiny, tmp_path) -> None:
    out = tmp_path / "run"
    run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=4, indices=[0, 1, 2, 3])
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(GalleryError, match="fingerprint"):
        run_batch(
            _other_model(tiny.model),
            tiny.gallery,
            out,
            methods=METHODS,
            chunk=4,
            indices=[0, 1, 2, 3],
        )
    with pytest.raises(GalleryError, match="fingerprint"):  # a fresh folder too
        run_batch(_other_model(tiny.model), tiny.gallery, tmp_path / "new", methods=METHODS)
    assert sorted(p.name for p in out.iterdir()) == before
    assert not (tmp_path / "new").exists()
    # the same model resumes fine, and the manifest records its ensemble fingerprint
    again = run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=4, indices=[0, 1, 2, 3])
    assert again.chunks_done_now == 0 and again.chunks_skipped == 1
    assert (
        load_batch(out, tiny.gallery).manifest["model_fingerprint"]
        == tiny.gallery.model_fingerprint
    )


def test_one_patient_syndrome_in_a_restricted_gallery_shows_no_face(tiny, tmp_path) -> None:
    """S:2 relabelled to a single patient, photos for computation only: no face anywhere."""
    g = tiny.gallery
    images = tuple(
        dataclasses.replace(im, subject_id="only") if im.syndrome_id == "S:2" else im
        for im in g.images
    )
    restricted = dataclasses.replace(g, images=images, photos_visible=False)
    one = [i for i, im in enumerate(restricted.images) if im.syndrome_id == "S:2"]
    run_batch(tiny.model, restricted, tmp_path / "run", methods=METHODS, target="logit", chunk=8)
    res = summarize(load_batch(tmp_path / "run", restricted), restricted)
    assert "S:2" in res.syndromes and res.maps[("S:2", "gradcam")].n_patients == 1
    assert "S:2" not in res.composites and res.composites == {}
    assert composite_face(restricted, "S:2") is None
    for i in one:
        face = gallery_face(restricted, i, show_photo=True)
        assert face.kind == "template"
        assert not any(np.array_equal(face.image, p) for p in restricted.photos)  # type: ignore[union-attr]


def _map(syndrome: str, patients: int) -> SyndromeMap:
    z = np.zeros((7, 7), np.float32)
    return SyndromeMap(syndrome, "gradcam", z, z, patients, patients, float("nan"), float("nan"))


def test_results_never_hold_a_composite_of_too_few_patients() -> None:
    """Whatever made the results (an older gmx's file included), the policy holds on load."""
    face = np.full((112, 112, 3), 200, np.uint8)
    few, many = MIN_COMPOSITE_SUBJECTS - 1, MIN_COMPOSITE_SUBJECTS
    res = SyndromeResults(
        syndromes=("F", "M"),
        names={"F": "few", "M": "many"},
        methods=("gradcam",),
        maps={("F", "gradcam"): _map("F", few), ("M", "gradcam"): _map("M", many)},
        composites={"F": face, "M": face},
        reference_composite=np.zeros((112, 112, 3), np.uint8),
    )
    assert set(res.composites) == {"M"}
    assert res.composite_difference("F") is None
    assert float(res.composite_difference("M").mean()) == 200.0  # type: ignore[union-attr]


def test_summarize_composites_only_the_explained_images(tiny, tmp_path) -> None:
    """With enough patients the composite is the mean of exactly the images whose maps were averaged."""
    g = tiny.gallery
    s1 = [i for i, im in enumerate(g.images) if im.syndrome_id == "S:1"]
    extra = tuple(
        GalleryImage(im.image_id, f"p{i}", "S:1", im.split) if i in (8, 9) else im
        for i, im in enumerate(g.images)
    )  # two S:3 images become S:1 patients p8, p9: S:1 has 6 images of 6 patients
    wide = dataclasses.replace(g, images=extra)
    chosen = [*s1, 8]  # 5 patients explained, image 9 left out
    run_batch(tiny.model, wide, tmp_path / "run", methods=METHODS, target="logit", indices=chosen)
    res = summarize(load_batch(tmp_path / "run", wide), wide)
    want = np.rint(wide.photos[chosen].astype(np.float64).mean(0)).astype(np.uint8)  # type: ignore[index]
    np.testing.assert_array_equal(res.composites["S:1"], want)
