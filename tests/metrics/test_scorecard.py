"""The scorecard: bootstrap, verdict rules, agreement, selection, run folder, committed demo file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gmx.aggregate.run import BatchRun
from gmx.aggregate.store import BatchStoreError, Shard
from gmx.config import DEMO_DIR, DEMO_GALLERY, DEMO_MODEL
from gmx.explain import list_methods
from gmx.explain.compare import agreement_matrix, map_agreement
from gmx.metrics.scorecard import (
    SANITY_MAX_SPEARMAN,
    MetricSummary,
    ScorecardSettings,
    bootstrap_mean,
    held_out_rows,
    load_scorecard,
    run_scorecard,
    scorecard_agreement,
    scorecard_from_json,
    summarize_scorecard,
    verdict,
)

DEMO_SCORECARD = DEMO_DIR / "scorecard.json"


def test_bootstrap_mean_by_hand() -> None:
    got = bootstrap_mean(np.array([2.0, 2.0, np.nan, 2.0]), n_boot=50, seed=1)
    assert got == MetricSummary(2.0, 2.0, 2.0, 3)
    a = bootstrap_mean(np.array([0.0, 1.0, 5.0, 2.0]), n_boot=200, seed=3)
    assert a.mean == 2.0 and a.n == 4
    assert 0.0 <= a.ci_low < 2.0 < a.ci_high <= 5.0
    assert a == bootstrap_mean(np.array([0.0, 1.0, 5.0, 2.0]), n_boot=200, seed=3)  # seeded
    empty = bootstrap_mean(np.array([np.nan]))
    assert empty.n == 0 and np.isnan(empty.mean)


def _s(mean: float, lo: float, hi: float) -> MetricSummary:
    return MetricSummary(mean, lo, hi, 10)


def test_verdict_rules() -> None:
    good = {
        "mprt_cascade_spearman": _s(0.1, 0.0, SANITY_MAX_SPEARMAN - 0.01),
        "mprt_spearman": _s(0.9, 0.8, 1.0),  # the last step alone does not decide
        "deletion_vs_random": _s(0.1, 0.01, 0.2),
        "insertion_vs_random": _s(0.1, 0.02, 0.2),
        "auroc_vs_null": _s(0.05, 0.01, 0.1),
    }
    assert verdict(good).badges() == {"passes sanity": True, "faithful": True, "localises": True}
    bad = {
        **good,
        "mprt_cascade_spearman": _s(0.45, 0.4, SANITY_MAX_SPEARMAN + 0.01),  # CI reaches it
        "mprt_spearman": _s(0.0, -0.1, 0.1),
        "insertion_vs_random": _s(0.1, -0.01, 0.2),  # deletion alone is not enough
        "auroc_vs_null": _s(0.05, -0.001, 0.1),
    }
    assert verdict(bad).badges() == {"passes sanity": False, "faithful": False, "localises": False}
    assert verdict(good, is_null=True).faithful is None  # the random map is the reference
    assert verdict({}).badges() == {"passes sanity": None, "faithful": None, "localises": None}
    assert "fails the sanity check" in verdict(bad).sentence()


def test_map_agreement_by_hand() -> None:
    a = np.arange(10.0).reshape(2, 5)
    rho, iou = map_agreement(a, a, top=0.2)
    assert rho == pytest.approx(1.0) and iou == 1.0
    rho, iou = map_agreement(a, -a, top=0.2)  # top-2 {9, 8} vs {0, 1}
    assert rho == pytest.approx(-1.0) and iou == 0.0
    b = a.copy()
    b.flat[9] = -1  # top-2 of b: {8, 7}; overlap {8} of union {9, 8, 7}
    assert map_agreement(a, b, top=0.2)[1] == pytest.approx(1 / 3)
    assert np.isnan(map_agreement(np.zeros((2, 5)), a)[0])
    m = agreement_matrix({"a": a, "b": b, "neg": -a}, top=0.2)
    assert m.methods == ("a", "b", "neg")
    assert np.array_equal(np.diag(m.spearman), [1, 1, 1]) and np.allclose(m.iou, m.iou.T)
    assert m.iou[0, 1] == pytest.approx(1 / 3) and m.spearman[0, 2] == pytest.approx(-1.0)


def test_held_out_rows_stratified_and_outside_the_gallery(tiny) -> None:
    labels = np.array(["S:1", "S:1", "S:1", "S:2", "S:2", "S:9", "S:1"])
    splits = np.array(["test", "test", "test", "test", "test", "test", "train"])
    ids = np.array(["a", "b", "im0", "c", "d", "e", "f"])  # im0 is a gallery image
    rows = held_out_rows(labels, splits, ids, tiny.gallery, seed=0)
    assert sorted(rows.tolist()) == [0, 1, 3, 4]  # not S:9 (not in gallery), im0, train
    assert {labels[r] for r in rows[:2]} == {"S:1", "S:2"}  # syndromes take turns
    assert held_out_rows(labels, splits, ids, tiny.gallery, n_images=3, seed=0).tolist() == (
        rows[:3].tolist()
    )
    with pytest.raises(ValueError, match="no held-out"):
        held_out_rows(labels, splits, ids, tiny.gallery, split="val")


def test_run_scorecard_resumable_sharded_and_summarised(tiny, tmp_path) -> None:
    faces = tiny.faces
    labels = np.array(tiny.labels)
    masks = np.zeros((3, 112, 112), bool)
    masks[:, 40:70, 30:80] = True
    regions = {"S:1": masks[0], "S:2": np.roll(masks[0], 30, axis=0)}
    settings = ScorecardSettings(
        methods=("saliency", "random", "edges"), steps=4, mprt_images=2, n_boot=100,
        road_percentiles=(50,), infidelity_samples=2,
    )  # fmt: skip
    before = [p.detach().clone() for p in tiny.model.model.parameters()]
    kw = dict(faces=faces, labels=labels, masks=masks, image_ids=["x0", "x1", "x2"],
              regions=regions, settings=settings, chunk=1)  # fmt: skip
    first = run_scorecard(tiny.model, tiny.gallery, tmp_path, shard=Shard(0, 2), **kw)
    assert isinstance(first, BatchRun)  # the one run-folder result type (gmx batch's)
    assert (first.chunks_total, first.chunks_done_now, first.rows_done_now) == (3, 2, 2)
    second = run_scorecard(tiny.model, tiny.gallery, tmp_path, shard=Shard(1, 2), **kw)
    assert second.chunks_done_now == 1
    again = run_scorecard(tiny.model, tiny.gallery, tmp_path, **kw)
    assert (again.chunks_done_now, again.chunks_skipped) == (0, 3)
    for p, q in zip(tiny.model.model.parameters(), before, strict=True):
        assert torch.equal(p, q)  # randomisation ran on a private copy
    with pytest.raises(BatchStoreError, match="different"):
        run_scorecard(tiny.model, tiny.gallery, tmp_path, **{**kw, "settings": ScorecardSettings(
            methods=("saliency", "random", "edges"), steps=5)})  # fmt: skip

    card = summarize_scorecard(tmp_path)
    assert card.methods == ("saliency", "random", "edges")
    assert (card.n_images, card.n_mprt_images) == (3, 2)
    # The random map is the faithfulness null: its paired differences are exactly 0.
    assert card.table["random"]["deletion_vs_random"] == MetricSummary(0.0, 0.0, 0.0, 3)
    assert card.verdicts["random"].faithful is None
    # Edges and the seeded random map ignore the weights: Spearman exactly 1 after randomising.
    assert card.table["edges"]["mprt_spearman"].mean == pytest.approx(1.0)
    assert card.table["edges"]["mprt_cascade_spearman"].mean == pytest.approx(1.0)
    assert card.verdicts["edges"].passes_sanity is False
    assert len(card.curves["saliency"]["deletion"]) == 5
    assert len(card.curves["saliency"]["mprt"]) == len(card.mprt_stages)
    data = json.loads(json.dumps(card.to_json(), allow_nan=False))
    back = scorecard_from_json(data)
    assert back.verdicts == card.verdicts and back.fingerprint == card.fingerprint
    assert card.to_csv().splitlines()[0] == "method,metric,mean,ci_low,ci_high,n,better"

    # `gmx scorecard summarize` writes the same JSON and the CSV.
    from gmx.cli import main

    out_json, out_csv = tmp_path.parent / "card.json", tmp_path.parent / "card.csv"
    argv = ["scorecard", "summarize", "--out", str(tmp_path), "--json", str(out_json)]
    assert main([*argv, "--csv", str(out_csv)]) == 0
    assert load_scorecard(out_json).verdicts == card.verdicts
    assert out_csv.read_text() == card.to_csv()


def test_cli_arguments() -> None:
    from gmx.cli import build_parser
    from gmx.metrics.cli import cmd_scorecard

    parser = build_parser()
    a = parser.parse_args(["scorecard", "--out", "r", "--images", "3", "--json", "x.json"])
    assert (a.func, a.scorecard_command, a.images, a.steps) == (cmd_scorecard, None, 3, 10)
    a = parser.parse_args(
        ["scorecard", "run", "--out", "r", "--shard", "1/2", "--methods", "edges"]
    )
    assert (a.scorecard_command, a.shard, a.methods) == ("run", "1/2", ["edges"])
    a = parser.parse_args(
        ["scorecard", "run", "--out", "r", "--backend", "ray", "--workers", "4", "--extras",
         "agreement", "completeness"]
    )  # fmt: skip
    assert (a.backend, a.workers, a.extras) == ("ray", 4, ["agreement", "completeness"])
    assert parser.parse_args(["scorecard", "--out", "r"]).backend == "local"
    a = parser.parse_args(["scorecard", "summarize", "--out", "r", "--csv", "t.csv"])
    assert a.scorecard_command == "summarize" and str(a.csv) == "t.csv"


def test_committed_demo_scorecard_matches_the_registry() -> None:
    from gmx.aggregate.run import gallery_ensemble
    from gmx.encode import load_model
    from gmx.gallery import load_gallery

    card = load_scorecard(DEMO_SCORECARD)
    assert set(list_methods()) <= set(card.methods), "re-run the demo scorecard (docs/metrics.md)"
    assert len(card.fingerprint) == 64
    gallery = load_gallery(DEMO_GALLERY)
    ensemble = gallery_ensemble(load_model(DEMO_MODEL, device="cpu"), gallery)
    assert card.model_fingerprint == ensemble.fingerprint == gallery.model_fingerprint
    assert card.n_images >= 10
    for m in card.methods:
        assert card.table[m]["deletion_auc"].n == card.n_images


def test_scorecard_extras_hog_edge_and_independent(tiny, tmp_path) -> None:
    """The optional sanity extras are stored and summarised; without extras the settings JSON
    (hence every earlier manifest and fingerprint) is unchanged."""
    assert "extras" not in ScorecardSettings(methods=("edges",)).resolved().to_json()
    with pytest.raises(ValueError, match="extras"):
        ScorecardSettings(extras=("nope",)).resolved()
    masks = np.zeros((1, 112, 112), bool)
    masks[:, 40:70, 30:80] = True
    settings = ScorecardSettings(
        methods=("saliency", "edges", "deeplift"), steps=2, mprt_images=1, n_boot=20,
        road_percentiles=(50,), infidelity_samples=2,
        extras=("agreement", "mprt_independent", "completeness", "mprt_hog"),
    )  # fmt: skip
    run_scorecard(
        tiny.model, tiny.gallery, tmp_path, faces=tiny.faces[:1], labels=np.array(["S:1"]),
        masks=masks, image_ids=["x"], regions={"S:1": masks[0], "S:2": ~masks[0]},
        settings=settings,
    )  # fmt: skip
    card = summarize_scorecard(tmp_path)
    assert card.settings["extras"] == ["mprt_hog", "mprt_independent", "completeness", "agreement"]
    assert card.table["deeplift"]["completeness_residual"].mean < 1e-3
    assert card.table["edges"]["completeness_residual"].n == 0  # claims no completeness
    e, g = card.table["edges"], card.table["saliency"]
    # The edge map ignores the weights: similarity 1 to itself and to the edge map, every way.
    for k in ("mprt_hog", "mprt_edge_spearman", "mprt_edge_hog", "mprt_independent_spearman",
              "mprt_independent_hog"):  # fmt: skip
        assert e[k].mean == pytest.approx(1.0) and e[k].n == 1, k
    assert g["mprt_independent_spearman"].mean < 0.99 and g["mprt_hog"].mean < 0.99
    assert len(card.curves["saliency"]["mprt_independent"]) == 6
    data = json.loads(json.dumps(card.to_json(), allow_nan=False))
    assert "mprt_edge_hog" in data["metrics"]
    assert scorecard_from_json(data).table["edges"]["mprt_hog"] == e["mprt_hog"]
    # Split agreement (one face here): the run's pairwise matrix, symmetric, 1 on the diagonal.
    agree = scorecard_agreement(scorecard_from_json(data))
    assert agree.methods == ("saliency", "edges", "deeplift") and agree.n == 1
    assert np.allclose(np.diag(agree.spearman), 1) and np.allclose(agree.iou, agree.iou.T)
    assert np.allclose(agree.spearman, agree.spearman.T)


def test_split_agreement_averages_faces_by_hand() -> None:
    from gmx.explain.compare import SplitAgreement, split_agreement

    a = np.arange(10.0).reshape(1, 2, 5)
    maps = {"a": np.concatenate([a, a]), "b": np.concatenate([a, -a]), "flat": np.zeros((2, 2, 5))}
    got = split_agreement(maps, top=0.2)
    assert got.n == 2
    assert got.spearman[0, 1] == pytest.approx(0.0)  # +1 on face 0, -1 on face 1
    assert got.iou[0, 1] == pytest.approx(0.5)  # 1 and 0
    assert np.isnan(got.spearman[0, 2]) and got.n_pairs[0, 2] == 0  # a constant map: undefined
    back = SplitAgreement.from_json(json.loads(json.dumps(got.to_json(), allow_nan=False)))
    assert back.methods == got.methods and np.allclose(back.iou, got.iou)
    with pytest.raises(ValueError, match="same faces"):
        split_agreement({"a": a, "b": np.concatenate([a, a])})
