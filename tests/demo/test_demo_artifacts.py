"""The embedded demo: model + gallery load together, and the model card's accuracy is reproducible."""

from __future__ import annotations

import json

import pytest

from gmx.config import DEMO_DIR, DEMO_GALLERY, DEMO_MODEL, load_config
from gmx.demo import evaluate_demo
from gmx.encode import Ensemble, load_model
from gmx.gallery import load_gallery
from gmx.synth import load_demo_data


@pytest.fixture(scope="module")
def demo():
    model = load_model(DEMO_MODEL, device="cpu")
    ensemble = Ensemble([model], flip=True, grey=True)
    gallery = load_gallery(DEMO_GALLERY, expected_fingerprint=ensemble.fingerprint)
    return model, ensemble, gallery


def test_default_configuration_is_the_demo():
    cfg = load_config({})
    assert cfg.is_demo and all(p.is_file() for p in (*cfg.model_paths, cfg.gallery_path))


def test_demo_model_card_says_synthetic_and_not_clinical(demo):
    model, _, gallery = demo
    assert "not for clinical use" in model.card.clinical_use_statement
    assert "not for clinical use" in gallery.description.lower()
    assert model.card.classes and len(model.card.classes) == 10


def test_gallery_holds_photos_masks_and_no_test_patient(demo):
    _, _, gallery = demo
    assert gallery.photos is not None and gallery.photos_visible
    masks = gallery.extras["gt_mask"]
    assert masks.shape == (len(gallery.images), 112, 112) and masks.any()
    data = load_demo_data(DEMO_DIR)
    test_subjects = set(data.subject_ids[data.splits == "test"])
    assert not test_subjects & {im.subject_id for im in gallery.images}


def test_card_accuracy_is_reproduced_on_the_committed_test_split(demo):
    model, ensemble, gallery = demo
    card = json.loads(model.card.notes)["ranking_evaluation"]
    measured = evaluate_demo(load_demo_data(DEMO_DIR), ensemble, gallery, DEMO_DIR)
    for split in ("frequent_test", "rare_test_split0"):
        for k in ("1", "5", "10"):
            assert measured[split]["macro"][k] == pytest.approx(card[split]["macro"][k], abs=0.01)
    # the targets, measured (not asserted by construction: the card holds measured values)
    assert measured["frequent_test"]["macro"]["1"] >= 0.70
    assert measured["frequent_test"]["macro"]["5"] >= 0.90


def test_example_photos_are_test_patients_and_rank_their_syndrome_top5():
    from gmx.align import FaceAligner, load_image
    from gmx.gallery import rank

    model = load_model(DEMO_MODEL, device="cpu")
    ensemble = Ensemble([model])
    gallery = load_gallery(DEMO_GALLERY, expected_fingerprint=ensemble.fingerprint)
    data = load_demo_data(DEMO_DIR)
    photos = sorted((DEMO_DIR / "examples").glob("syndrome_*.jpg"))
    assert len(photos) == 15
    hits = 0
    with FaceAligner() as aligner:
        for p in photos:
            subject = p.stem.split("_")[-1]
            label = data.labels[data.subject_ids == subject][0]
            face = aligner.align(load_image(p)).primary
            top5 = [m.syndrome_id for m in rank(ensemble.embed([face])[0], gallery).syndromes[:5]]
            hits += label in top5
    # Measured 11 of 15 (frequent 9/10, rare 2/5; rare top-5 is 60 % on split 0). The app aligns a
    # photo on its own, featured landmarks while the demo data are cropped on the reference face's
    # (docs/synth.md, step 5): the committed crops of the same photos rank 13 of 15 in the top 5.
    assert hits >= 10, hits


def test_re_embedding_keeps_the_training_record(tmp_path):
    """`python -m gmx.demo gallery` rewrites metrics.json; the model's training record must stay."""
    from gmx.demo import _previous_training

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"model_fingerprint": "abc", "training": {"epochs": [1]}}))
    assert _previous_training(path, "abc") == {"epochs": [1]}
    assert _previous_training(path, "other model") is None  # another model's record is not kept
    assert _previous_training(tmp_path / "missing.json", "abc") is None
    committed = json.loads((DEMO_DIR / "metrics.json").read_text())
    assert "training" in committed and committed["training"]["epochs"]
