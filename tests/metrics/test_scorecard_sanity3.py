"""Scorecard extras of issue 11's third pass: data randomisation (a shuffled-label control model),
captum ``sensitivity_max``, and the gallery's own photos as the source of faces
(leave-one-patient-out)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gmx.encode import GestaltModel, LoadedModel, default_card, iresnet
from gmx.gallery import Gallery
from gmx.metrics.scorecard import (
    EXTRA_SETTINGS,
    SANITY_MAX_SPEARMAN,
    MetricSummary,
    ScorecardSettings,
    data_control,
    gallery_rows,
    load_rows,
    run_scorecard,
    scorecard_from_json,
    summarize_scorecard,
    verdict,
)


def _other_model(seed: int) -> LoadedModel:
    """A model of the tiny fixture's architecture with other (random) weights."""
    torch.manual_seed(seed)
    backbone = iresnet((1, 1, 1, 1), (8, 16, 16, 32), embedding_dim=32).eval()
    card = default_card(
        name="tiny-control", architecture="iresnet[1,1,1,1]x[8,16,16,32]", embedding_dim=32
    )
    return LoadedModel(GestaltModel(backbone, None).eval(), card, f"tiny-control-{seed}")


def _s(mean: float, lo: float, hi: float) -> MetricSummary:
    return MetricSummary(mean, lo, hi, 10)


def test_data_randomisation_verdict_rule() -> None:
    ok = {"mprt_cascade_spearman": _s(0.1, 0.0, 0.2)}
    assert verdict(ok).passes_sanity is True
    high = {**ok, "data_spearman": _s(0.6, 0.45, SANITY_MAX_SPEARMAN + 0.01)}
    assert verdict(high).passes_sanity is False  # the map survives shuffled labels: flagged
    low = {**ok, "data_spearman": _s(0.1, 0.0, SANITY_MAX_SPEARMAN - 0.01)}
    assert verdict(low).passes_sanity is True
    bad_mprt = {**low, "mprt_cascade_spearman": _s(0.9, 0.8, 1.0)}
    assert verdict(bad_mprt).passes_sanity is False
    assert verdict({"data_spearman": low["data_spearman"]}).passes_sanity is True


@pytest.mark.parametrize(
    ("mprt_high", "data_high", "parts", "words"),
    [
        (0.2, 0.2, (True, True), "passes both sanity checks"),
        (0.2, 0.66, (True, False), "fails the data randomisation check"),
        (0.9, 0.2, (False, True), "fails the model randomisation check"),
        (0.9, 0.66, (False, False), "fails both sanity checks"),
    ],
)
def test_the_sentence_names_the_sanity_check_that_failed(
    mprt_high: float, data_high: float, parts: tuple[bool, bool], words: str
) -> None:
    """A map that passes the weight cascade but survives shuffled labels (FullGrad on the demo)
    must not be described as staying similar when the weights are randomised."""
    table = {
        "mprt_cascade_spearman": _s(mprt_high - 0.1, mprt_high - 0.2, mprt_high),
        "data_spearman": _s(data_high - 0.1, data_high - 0.2, data_high),
    }
    got = verdict(table)
    assert (got.model_sanity, got.data_sanity) == parts
    assert got.passes_sanity is all(parts)
    assert words in got.sentence()
    if parts == (True, False):
        assert "weights are randomised, but" in got.sentence()
    # The badge names the failed half when only one failed (the Explain page, the case report).
    badge = dict((w, v) for w, v in got.words() if "sanity" in w)
    expected = {
        (True, True): "passes sanity",
        (True, False): "fails sanity (shuffled labels)",
        (False, True): "fails sanity (randomised weights)",
        (False, False): "fails sanity",
    }[parts]
    assert list(badge) == [expected]


def test_a_single_sanity_test_keeps_the_cascade_sentence() -> None:
    only = verdict({"mprt_cascade_spearman": _s(0.1, 0.0, 0.2)})
    assert only.data_sanity is None
    assert only.sentence().startswith("Changes when the model's weights are randomised (passes")


def test_extra_settings_stay_out_of_earlier_fingerprints() -> None:
    plain = ScorecardSettings(methods=("edges",)).resolved().to_json()
    for name in EXTRA_SETTINGS["sensitivity"]:
        assert name not in plain
    on = ScorecardSettings(methods=("edges",), extras=("sensitivity",)).resolved().to_json()
    assert on["sensitivity_samples"] == 4 and "sensitivity_radius" in on
    with pytest.raises(ValueError, match="sensitivity"):
        ScorecardSettings(sensitivity_samples=0).resolved()


def test_data_randomisation_and_sensitivity_extras(tiny, tmp_path) -> None:
    masks = np.zeros((2, 112, 112), bool)
    masks[:, 40:70, 30:80] = True
    settings = ScorecardSettings(
        methods=("saliency", "edges", "random"), steps=2, mprt_images=0, n_boot=20,
        road_percentiles=(50,), infidelity_samples=2, extras=("sensitivity", "data_randomisation"),
        sensitivity_samples=2, sensitivity_images=1,
    )  # fmt: skip
    kw = dict(
        faces=tiny.faces[:2], labels=np.array(["S:1", "S:2"]), masks=masks,
        image_ids=["x", "y"], regions={"S:1": masks[0], "S:2": ~masks[0]}, settings=settings,
    )  # fmt: skip
    with pytest.raises(ValueError, match="shuffled-label control"):
        run_scorecard(tiny.model, tiny.gallery, tmp_path / "none", **kw)
    # The control is the model itself: every map is its own control map (Spearman 1).
    run_scorecard(
        tiny.model, tiny.gallery, tmp_path / "self", control=data_control(tiny.model, tiny.gallery),
        **kw,
    )  # fmt: skip
    same = summarize_scorecard(tmp_path / "self")
    assert same.table["saliency"]["data_spearman"].mean == pytest.approx(1.0)
    assert same.verdicts["saliency"].passes_sanity is False
    # Another model's weights: the saliency map changes, the edge map (no model) cannot.
    other = data_control(_other_model(7), tiny.gallery)
    assert other.gallery.model_fingerprint != tiny.gallery.model_fingerprint
    run_scorecard(tiny.model, tiny.gallery, tmp_path / "other", control=other, **kw)
    card = summarize_scorecard(tmp_path / "other")
    assert card.table["edges"]["data_spearman"].mean == pytest.approx(1.0)
    assert card.table["saliency"]["data_spearman"].mean < 0.9
    assert card.table["saliency"]["data_ssim"].n == 2
    # sensitivity_max on the first face only; the seeded random map ignores the input.
    sens = card.table["saliency"]["sensitivity_max"]
    assert sens.n == 1 and np.isfinite(sens.mean) and sens.mean > 0
    assert card.table["random"]["sensitivity_max"].mean == pytest.approx(0.0)
    assert card.table["edges"]["sensitivity_max"].mean > 0
    _, arrays, _ = load_rows(tmp_path / "other")
    assert np.isnan(arrays["saliency:sensitivity_max"][1])
    data = json.loads(json.dumps(card.to_json(), allow_nan=False))
    assert "data_spearman" in data["metrics"] and "sensitivity_max" in data["metrics"]
    back = scorecard_from_json(data).table["saliency"]["data_spearman"]
    assert back.mean == pytest.approx(card.table["saliency"]["data_spearman"].mean, abs=1e-6)
    # Both halves of the sanity verdict are stored and read back (the edges fail the data test).
    loaded = scorecard_from_json(data).verdicts
    for m, v in card.verdicts.items():
        assert (loaded[m].model_sanity, loaded[m].data_sanity) == (v.model_sanity, v.data_sanity)
        assert loaded[m].sentence() == v.sentence()
    assert card.verdicts["edges"].data_sanity is False
    # The control's fingerprint is pinned: another control is another run.
    from gmx.aggregate.store import BatchStoreError

    with pytest.raises(BatchStoreError):
        run_scorecard(
            tiny.model, tiny.gallery, tmp_path / "other",
            control=data_control(_other_model(8), tiny.gallery), **kw,
        )  # fmt: skip


def test_gallery_photos_as_faces_leave_one_patient_out(tiny, tmp_path) -> None:
    rows = gallery_rows(tiny.gallery, seed=0)
    assert sorted(rows.tolist()) == list(range(6))
    assert {tiny.gallery.images[r].syndrome_id for r in rows[:2]} == {"S:1", "S:2"}
    # A syndrome with a single patient has no target once that patient is left out.
    lone = tiny.gallery.subset([0, 3, 4])
    assert [lone.images[r].image_id for r in gallery_rows(lone)] == ["im3", "im4"]
    with pytest.raises(ValueError, match="photos"):
        gallery_rows(Gallery(**_fields(lone)))  # no photos

    pick = rows[:3]
    g = tiny.gallery
    settings = ScorecardSettings(
        methods=("saliency", "random"), steps=2, mprt_images=1, n_boot=20,
        road_percentiles=(50,), infidelity_samples=2,
    )  # fmt: skip
    run_scorecard(
        tiny.model, g, tmp_path, faces=g.photos[pick],
        labels=np.array([g.images[r].syndrome_id for r in pick]), masks=None,
        image_ids=[g.images[r].image_id for r in pick], regions={},
        subjects=[g.images[r].subject_id for r in pick], settings=settings, chunk=2,
    )  # fmt: skip
    manifest, arrays, finished = load_rows(tmp_path)
    assert finished.all() and manifest["faces"].startswith("gallery")
    # Without leaving the patient out, each photo's nearest own-syndrome image is itself (cosine
    # 1); left out, the clean score is another patient's.
    clean = arrays["saliency:deletion_curve"][:, 0]
    assert np.all(clean < 0.999)
    card = summarize_scorecard(tmp_path)
    assert card.table["saliency"]["auroc"].n == 0  # no masks: no localisation
    assert card.verdicts["saliency"].localises is None
    assert card.table["saliency"]["deletion_auc"].n == 3
    assert card.n_mprt_images == 1


def _fields(gallery) -> dict:
    return {
        k: getattr(gallery, k)
        for k in ("name", "version", "images", "syndromes", "embeddings", "variants",
                  "model_fingerprint")
    }  # fmt: skip


def test_syndrome_ranks_equal_rank_of_each_query(tiny) -> None:
    """The batched re-ranking of the faithfulness curves gives :func:`rank`'s syndrome rank."""
    from gmx.aggregate.run import gallery_ensemble
    from gmx.gallery import rank, syndrome_ranks

    g = tiny.gallery
    rng = np.random.default_rng(3)
    faces = np.concatenate([tiny.faces, rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)])
    q = gallery_ensemble(tiny.model, g).embed(faces)
    q = np.concatenate([q, g.embeddings[:2]])  # exact gallery rows: distance-0 ties
    q = np.concatenate([q, np.repeat(g.embeddings[3:4], 1, axis=0)])
    wanted = ["S:1", "S:2"] * (len(q) // 2) + ["S:1"] * (len(q) % 2)
    got = syndrome_ranks(q, g, wanted)
    want = [rank(row, g).syndrome(s).rank for row, s in zip(q, wanted, strict=True)]
    assert got.tolist() == want
    assert np.isnan(syndrome_ranks(q[:1], g, ["S:9"])[0])  # no images: not ranked
    # Two syndromes at exactly the same distance: the nearer image position comes first.
    twin = g.subset([0, 3])
    tie = np.stack([twin.embeddings[0] + twin.embeddings[1]])
    assert syndrome_ranks(tie, twin, ["S:2"]).tolist() == [rank(tie[0], twin).syndrome("S:2").rank]


def test_cli_arguments_of_the_new_extras_and_gallery_faces() -> None:
    from gmx.cli import build_parser

    parser = build_parser()
    a = parser.parse_args(
        ["scorecard", "run", "--out", "r", "--faces", "gallery", "--extras", "sensitivity",
         "data_randomisation", "--control", "c.pt", "--sensitivity-samples", "2",
         "--sensitivity-images", "3"]
    )  # fmt: skip
    assert (a.faces, a.extras, str(a.control)) == (
        "gallery", ["sensitivity", "data_randomisation"], "c.pt"
    )  # fmt: skip
    assert (a.sensitivity_samples, a.sensitivity_images) == (2, 3)
    a = parser.parse_args(["scorecard", "--out", "r"])
    assert (a.faces, a.sensitivity_samples, a.control) == ("auto", 4, None)
