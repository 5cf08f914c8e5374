"""Pair-map faithfulness: the Similarity page's maps scored on the pair's similarity, both faces."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.encode import Ensemble
from gmx.metrics.pairs import pair_faithfulness
from gmx.similarity import PairExplainer


def test_pair_faithfulness_on_both_faces(tiny) -> None:
    ens = Ensemble([tiny.model], flip=True, grey=False)
    assert ens.fingerprint == tiny.gallery.model_fingerprint
    explainer = PairExplainer(ens, tiny.gallery)
    face = tiny.faces[0]
    pairs = [
        *explainer.explain(face, [1, 4], method="exact"),
        *explainer.explain(face, [1], method="occlusion"),
    ]
    got = pair_faithfulness(ens, tiny.gallery, face, pairs, steps=4)
    assert [(r.method, r.image_index, r.side) for r in got] == [
        ("exact", 1, "query"), ("exact", 1, "gallery"), ("exact", 4, "query"),
        ("exact", 4, "gallery"), ("occlusion", 1, "query"), ("occlusion", 1, "gallery"),
    ]  # fmt: skip
    for r, p in zip(got, [pairs[0], pairs[0], pairs[1], pairs[1], pairs[2], pairs[2]], strict=True):
        # Both sides score the pair's similarity: the clean faces give PairMaps.score (the mean
        # cosine over the variants), at the start of deletion and the end of insertion.
        assert r.deletion.scores[0] == pytest.approx(p.score, abs=1e-5)
        assert r.insertion.scores[-1] == pytest.approx(p.score, abs=1e-5)
        assert r.random_deletion.scores[0] == pytest.approx(p.score, abs=1e-5)
        # Deletion and insertion meet at the fully perturbed face (the same on every curve).
        assert r.deletion.scores[-1] == pytest.approx(r.insertion.scores[0], abs=1e-6)
        assert r.deletion.scores[-1] == pytest.approx(r.random_deletion.scores[-1], abs=1e-6)
        assert np.isfinite(r.deletion_vs_random) and np.isfinite(r.insertion_vs_random)
    # The random null compared with itself is exactly 0 (same seed, same face).
    again = pair_faithfulness(ens, tiny.gallery, face, pairs[:1], steps=4, sides=("query",))
    assert again[0].random_deletion.auc == got[0].random_deletion.auc
    assert again[0].deletion.auc == got[0].deletion.auc


def test_pair_faithfulness_needs_gallery_photos(tiny) -> None:
    from dataclasses import replace

    ens = Ensemble([tiny.model], flip=True, grey=False)
    pairs = PairExplainer(ens, tiny.gallery).explain(tiny.faces[0], [0], method="exact")
    no_photos = replace(tiny.gallery, photos=None)
    with pytest.raises(ValueError, match="photos"):
        pair_faithfulness(ens, no_photos, tiny.faces[0], pairs)
    assert pair_faithfulness(ens, tiny.gallery, tiny.faces[0], []) == ()


def test_score_and_summarize_pairs(tiny) -> None:
    """score_pairs pairs each face with its own syndrome's nearest image; the summary is the
    scorecard's bootstrap mean of each method x side x metric; the JSON round-trips."""
    from gmx.metrics.pairs import (
        PAIR_METRICS,
        PairTable,
        nearest_own_image,
        score_pairs,
        summarize_pairs,
    )
    from gmx.metrics.scorecard import bootstrap_mean

    ens = Ensemble([tiny.model], flip=True, grey=False)
    explainer = PairExplainer(ens, tiny.gallery)
    got = score_pairs(explainer, tiny.faces[:2], tiny.labels[:2], methods=["exact"], steps=2)
    assert [(r.method, r.side) for r in got] == [("exact", "query"), ("exact", "gallery")] * 2
    for r, face, label in zip(got[::2], tiny.faces[:2], tiny.labels[:2], strict=True):
        best = nearest_own_image(explainer.query(face).embeddings, tiny.gallery, label)
        assert r.image_index == best and tiny.gallery.images[best].syndrome_id == label
    table = summarize_pairs(got, n_boot=20, seed=0)
    assert table.n_pairs == 2 and set(table.table) == {"pair_exact"}
    assert len(table.table["pair_exact"]) == len(PAIR_METRICS) * 2
    want = bootstrap_mean(np.array([r.deletion_vs_random for r in got if r.side == "query"]),
                          n_boot=20, seed=0)  # fmt: skip
    assert table.table["pair_exact"]["deletion_vs_random_query"] == want
    assert PairTable.from_json(table.to_json()).to_json() == table.to_json()
    assert {row["metric"] for row in table.rows()} == set(table.table["pair_exact"])
    with pytest.raises(ValueError, match="no image"):
        nearest_own_image(explainer.query(tiny.faces[0]).embeddings, tiny.gallery, "S:9")


def test_scorecard_pairs_command_adds_rows(tmp_path) -> None:
    """``gmx scorecard-pairs`` on the demo: pair rows in the JSON (the page reads them) and the
    CSV; a scorecard of another model is refused."""
    import json
    from pathlib import Path

    from gmx.cli import main
    from gmx.metrics.pairs import pair_table
    from gmx.metrics.scorecard import load_scorecard

    demo = Path(__file__).resolve().parents[2] / "models" / "demo" / "scorecard.json"
    if not demo.exists():
        pytest.skip("demo scorecard not built")
    card = tmp_path / "card.json"
    card.write_text(demo.read_text())
    out_csv = tmp_path / "card.csv"
    rc = main(["scorecard-pairs", "--json", str(card), "--csv", str(out_csv), "--pairs", "1",
               "--methods", "exact", "--steps", "2", "--boot", "10"])  # fmt: skip
    assert rc == 0
    got = pair_table(load_scorecard(card))
    assert got is not None and got.n_pairs == 1 and got.sides == ("query", "gallery")
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "method,metric,mean,ci_low,ci_high,n,better"
    assert sum(line.startswith("pair_exact,") for line in lines) == 8
    other = json.loads(demo.read_text())
    other["model_fingerprint"] = "f" * 64
    card.write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="not the configured"):
        main(["scorecard-pairs", "--json", str(card), "--pairs", "1"])
