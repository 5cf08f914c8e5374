"""The Scorecard page and the Explain badges (AppTest): the committed demo scorecard shows
instantly; another model's scorecard is found by its fingerprint in gmx's cache folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from gmx.explain import list_methods
from gmx.metrics.scorecard import (
    SUMMARY_METRICS,
    MetricSummary,
    Scorecard,
    Verdict,
)
from ui import state

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "6_Scorecard.py")
EXPLAIN = str(ROOT / "pages" / "2_Explain.py")
DEMO_SCORECARD = ROOT / "models" / "demo" / "scorecard.json"


def _card(model_fingerprint: str) -> Scorecard:
    """A hand-made scorecard: saliency passes everything, edges fails sanity, random is the null."""
    methods = tuple(list_methods())
    table = {m: {k: MetricSummary(0.1, 0.05, 0.15, 4) for k in SUMMARY_METRICS} for m in methods}
    verdicts = {m: Verdict(True, False, None) for m in methods}
    verdicts["saliency"] = Verdict(True, True, True)
    verdicts["edges"] = Verdict(False, True, False)
    verdicts["random"] = Verdict(False, None, False)
    curves = {m: {"deletion": (1.0, 0.5, 0.2), "insertion": (0.2, 0.6, 1.0)} for m in methods}
    return Scorecard(
        methods, table, verdicts, curves, (0.0, 0.5, 1.0), ("head",), 4, 0,
        {"steps": 2, "fill": "blur", "n_boot": 10, "seed": 0}, "f" * 64, model_fingerprint,
        "tiny gallery",
    )  # fmt: skip


def _tiny_fingerprint(tiny_setup) -> str:
    """The fingerprint of the models + TTA that embedded the gallery (what a scorecard records)."""
    from gmx.gallery import load_gallery

    return load_gallery(tiny_setup.gallery_path).model_fingerprint


def test_no_scorecard_says_how_to_make_one(tiny_setup, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("gmx scorecard" in i.value for i in at.info)
    assert not at.dataframe


def test_own_scorecard_found_by_fingerprint(tiny_setup, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    (tmp_path / "scorecards").mkdir()
    other = _card("not-this-model").to_json()
    (tmp_path / "scorecards" / "a_other.json").write_text(json.dumps(other))
    mine = _card(_tiny_fingerprint(tiny_setup)).to_json()
    (tmp_path / "scorecards" / "b_mine.json").write_text(json.dumps(mine))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("gmx scorecard" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert len(table) == len(list_methods())
    assert table.iloc[0]["method"] == "Saliency"  # passes the most verdicts: listed first
    assert table.iloc[0]["faithful"] == "yes" and "[0.050, 0.150]" in table.iloc[0]["sparseness"]
    assert len(at.get("plotly_chart")) == 2  # deletion, insertion; no MPRT curve stored
    at.selectbox[0].set_value("edges").run()
    assert "fails the sanity check" in " ".join(m.value for m in at.markdown)


def test_split_agreement_heatmaps(tiny_setup, monkeypatch, tmp_path) -> None:
    """A scorecard with the split-averaged agreement shows its two heatmaps; one without does
    not (the test above: two charts)."""
    import numpy as np

    from gmx.explain.compare import split_agreement

    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    (tmp_path / "scorecards").mkdir()
    card = _card(_tiny_fingerprint(tiny_setup))
    a = np.arange(12.0).reshape(1, 3, 4)
    agree = split_agreement({"saliency": np.concatenate([a, a]), "edges": np.concatenate([a, -a])})
    data = {**card.to_json(), "extra": {"agreement": agree.to_json()}}
    (tmp_path / "scorecards" / "mine.json").write_text(json.dumps(data))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    assert len(charts) == 2 + 2  # deletion, insertion; Spearman and IoU heatmaps
    rho = json.loads(charts[2].proto.spec)["data"][0]
    assert rho["type"] == "heatmap" and rho["x"] == ["Saliency", "Edge detector (baseline)"]
    assert rho["z"] == [[1.0, 0.0], [0.0, 1.0]]  # +1 on one face, -1 on the other: mean 0
    assert any("averaged over the scorecard's 2 faces" in c.value for c in at.caption)


@pytest.mark.skipif(not DEMO_SCORECARD.exists(), reason="demo scorecard not built")
def test_demo_scorecard_shows_instantly(monkeypatch) -> None:
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("gmx scorecard" in i.value for i in at.info)
    assert len(at.dataframe[0].value) >= len(list_methods())
    regions = 2 if (ROOT / "models" / "demo" / "regions.json").exists() else 0  # region bars
    # deletion, insertion, MPRT; agreement heatmaps; the region bars of one syndrome
    assert len(at.get("plotly_chart")) == 3 + 2 + regions
    assert any("averaged over the scorecard's 10 faces" in c.value for c in at.caption)
    assert any("How to read this" in e.label for e in at.expander)


def test_explain_maps_carry_badges_from_the_scorecard(tiny_setup, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))

    def page() -> AppTest:
        at = AppTest.from_file(EXPLAIN, default_timeout=180)
        at.session_state[state.CONFIG] = load_config()
        at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
        at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
        at.session_state[state.KEEP_PREFIX + "explain.methods"] = ["saliency", "edges", "gradcam"]
        return at.run()

    at = page()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("-badge[" in m.value for m in at.markdown)  # no scorecard: no badges
    (tmp_path / "scorecards").mkdir()
    card = _card(_tiny_fingerprint(tiny_setup)).to_json()
    (tmp_path / "scorecards" / "tiny.json").write_text(json.dumps(card))
    at = page()
    assert not at.exception, [e.value for e in at.exception]
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert ":green-badge[passes sanity] :green-badge[faithful] :green-badge[localises]" in badges
    assert ":red-badge[fails sanity] :green-badge[faithful] :red-badge[does not localise]" in badges
    assert ":green-badge[passes sanity] :red-badge[not faithful]" in badges  # localises: not judged
    assert len(badges) == 3
    assert any("scorecard of the active model" in c.value for c in at.caption)


def test_explain_method_agreement_for_this_photo(tiny_setup, monkeypatch) -> None:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(EXPLAIN, default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.session_state[state.KEEP_PREFIX + "explain.methods"] = ["saliency", "edges", "gradcam"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 2  # off by default: large view and raw panel only
    at.toggle(key="gmx.explain.agreement").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    assert len(charts) == 2 + 2  # large view, raw panel, Spearman and IoU heatmaps
    spearman = json.loads(charts[0].proto.spec)["data"][0]
    assert spearman["type"] == "heatmap" and len(spearman["z"]) == 3
    assert [spearman["z"][i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    at.selectbox(key="gmx.explain.agreement_row").set_value(1).run()
    assert not at.exception, [e.value for e in at.exception]


def test_pair_rows_and_region_profiles(tiny_setup, monkeypatch, tmp_path) -> None:
    """A scorecard with pair rows (``gmx scorecard-pairs``) shows them; region profiles of the
    same model show per syndrome: an overview, the bars, and the syndrome's HPO features."""
    from gmx.metrics.pairs import PairTable, with_pair_rows
    from tests.regions.test_profiles import profiles_json

    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    fp = _tiny_fingerprint(tiny_setup)
    (tmp_path / "scorecards").mkdir()
    cell = MetricSummary(0.25, 0.125, 0.375, 3)
    table = PairTable(("exact",), ("query", "gallery"), {"pair_exact": {
        f"{m}_{s}": cell for s in ("query", "gallery") for m in
        ("deletion_auc", "insertion_auc", "deletion_vs_random", "insertion_vs_random")}}, 3, {})  # fmt: skip
    data = with_pair_rows(_card(fp).to_json(), table)
    (tmp_path / "scorecards" / "mine.json").write_text(json.dumps(data))
    (tmp_path / "region_profiles").mkdir()
    (tmp_path / "region_profiles" / "mine.json").write_text(json.dumps(profiles_json(fp)))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    subheaders = [s.value for s in at.subheader]
    assert "Pair maps (Similarity page)" in subheaders and "Regions per syndrome" in subheaders
    pairs = next(d.value for d in at.dataframe if "pair method" in d.value.columns)
    assert list(pairs["face"]) == ["query", "gallery"]
    assert pairs.iloc[0]["deletion vs random"] == "0.250 [0.125, 0.375]"
    overview = next(d.value for d in at.dataframe if "true regions" in d.value.columns)
    assert list(overview["true regions"]) == ["Chin & mandible", "Periorbital (eyes, lids)"]
    assert overview.iloc[1]["Saliency"] == "Periorbital (eyes, lids) (true)"
    assert overview.iloc[1]["occlusion"] == "Nose" and overview.iloc[0]["Shapley"] == ""
    at.selectbox(key="gmx.scorecard.region_syndrome").set_value("S:2").run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "Example photo syndrome_B_1.jpg" in text and "Top regions: Periorbital" in text
    charts = at.get("plotly_chart")
    bars = json.loads(charts[-1].proto.spec)["data"]
    assert [b["name"] for b in bars] == ["drop when blurred alone", "exact Shapley value"]
