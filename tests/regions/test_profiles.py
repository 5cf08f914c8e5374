"""Stored region profiles (``benchmarks/regions.py --out``, the Scorecard page's per-syndrome
regions): reading, ranking, the profile beside the HPO features, and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmx.regions import (
    REGION_PROFILES_VERSION,
    REGIONS,
    load_region_profiles,
    region_profiles_from_json,
    region_profiles_path,
)


def profiles_json(model_fingerprint: str, *, shapley: bool = True) -> dict:
    """Two faces: S:2 with Shapley values, S:1 (listed second) without."""

    def by_region(values: list[float]) -> dict[str, float | None]:
        return dict(zip(REGIONS, values, strict=True))

    density = [0.5, 0.2, 0.1, 3.0, 1.0, 0.3, 2.0, 0.4, 0.6, 0.7]  # periorbital, philtrum, nose...
    share = [d / 10 for d in density]
    occlusion = [0.01, 0.0, 0.02, 0.05, 0.2, 0.03, 0.04, 0.0, 0.01, -0.01]  # nose first
    face = {
        "photo": "syndrome_B_1.jpg", "syndrome": "S:2", "rank": 1,
        "true_regions": ["periorbital"],
        "methods": {"saliency": {"share": by_region(share), "density": by_region(density)}},
        "shapley": {"seconds": 1.0, "evaluations": 12, "occlusion": by_region(occlusion),
                    "full": 0.9, "empty": 0.4},
    }  # fmt: skip
    if shapley:
        face["shapley"]["values"] = by_region([0.05] * 9 + [0.05])
    other = json.loads(json.dumps(face))
    other.update(photo="syndrome_A_1.jpg", syndrome="S:1", true_regions=["chin"])
    other["shapley"].pop("values", None)
    return {"regions_version": REGION_PROFILES_VERSION, "model_fingerprint": model_fingerprint,
            "variants": ["m0 plain"], "regions": list(REGIONS), "faces": [face, other]}  # fmt: skip


def test_read_and_rank(tmp_path) -> None:
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(profiles_json("fp")))
    got = load_region_profiles(path)
    assert list(got.faces) == ["S:1", "S:2"]  # syndrome order
    assert got.methods == ("saliency",)
    f = got.faces["S:2"]
    assert f.methods["saliency"].ranking("density")[:2] == ("periorbital", "philtrum")
    assert f.score_ranking("occlusion")[0] == "nose"
    assert f.shapley is not None and f.shapley.sum() == pytest.approx(f.full - f.empty)
    assert got.faces["S:1"].shapley is None and got.faces["S:1"].score_ranking("shapley") == ()
    # Beside the HPO features: Hypertelorism (periorbital) is the map's top region.
    prof = f.profile("saliency", ["HP:0000316"], label="Two")
    assert prof.top == ("periorbital", "philtrum", "nose")
    assert prof.features[0].best_rank == 1 and prof.features[0].highlighted
    assert np.isnan(f.methods["saliency"].mean).all()


def test_bad_files_are_errors(tmp_path) -> None:
    data = profiles_json("fp")
    with pytest.raises(ValueError, match="format"):
        region_profiles_from_json({**data, "regions_version": 99})
    with pytest.raises(ValueError, match="other regions"):
        region_profiles_from_json({**data, "regions": ["nose"]})
    broken = json.loads(json.dumps(data))
    del broken["faces"][0]["shapley"]["occlusion"]
    with pytest.raises(ValueError, match="malformed"):
        region_profiles_from_json(broken)


def test_found_by_model_fingerprint(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    (tmp_path / "region_profiles").mkdir()
    (tmp_path / "region_profiles" / "a.json").write_text(json.dumps(profiles_json("other")))
    (tmp_path / "region_profiles" / "b.json").write_text("not json")
    (tmp_path / "region_profiles" / "c.json").write_text(json.dumps(profiles_json("mine")))
    assert region_profiles_path("mine") == tmp_path / "region_profiles" / "c.json"
    assert region_profiles_path("nobody") is None
