"""The facial features (HPO terms) of the suggested syndromes, the user's choices on them, and how
they travel into the Phenopacket and the service JSON (tiny hand-made gallery; ranking A, C, B)."""

from __future__ import annotations

import pytest
from google.protobuf.json_format import Parse
from phenopackets import Phenopacket

from gmx.gallery import (
    FeatureChoices,
    Syndrome,
    rank,
    suggested_features,
    to_phenopacket,
    to_phenopacket_json,
    to_service_json,
)

from ._gallery_fixtures import QUERY, make_tiny

SYNDROMES = (
    Syndrome("A", "Alpha syndrome", "100100", ("G1",), ("HP:0000316", "HP:0000154")),
    Syndrome("B", "Beta syndrome", None, ("G2",), ("HP:0000154", "HP:9999999")),
    Syndrome("C", "Gamma syndrome", "300300", (), ("HP:0000316",)),
)


def test_suggested_features_lists_each_term_once_with_its_syndromes() -> None:
    gallery = make_tiny(syndromes=SYNDROMES)
    r = rank(QUERY, gallery)
    assert [m.syndrome_id for m in r.syndromes] == ["A", "C", "B"]
    features = suggested_features(r, gallery)
    assert [(f.hpo_id, f.term.label, f.syndromes) for f in features] == [
        ("HP:0000316", "Hypertelorism", ("Alpha syndrome", "Gamma syndrome")),
        ("HP:0000154", "Wide mouth", ("Alpha syndrome", "Beta syndrome")),
        ("HP:9999999", None, ("Beta syndrome",)),
    ]
    # only the top-k syndromes count
    top2 = suggested_features(r, gallery, 2)
    assert [(f.hpo_id, f.syndromes) for f in top2] == [
        ("HP:0000316", ("Alpha syndrome", "Gamma syndrome")),
        ("HP:0000154", ("Alpha syndrome",)),
    ]
    assert suggested_features(r, gallery, 0) == ()
    with pytest.raises(ValueError, match="top_k"):
        suggested_features(r, gallery, -1)


def test_suggested_features_of_syndromes_without_hpo_is_empty(tiny) -> None:
    r = rank(QUERY, tiny)
    assert [f.hpo_id for f in suggested_features(r, tiny)] == ["HP:0000316"]
    bare = make_tiny(syndromes=tuple(Syndrome(s.syndrome_id, s.name) for s in SYNDROMES))
    assert suggested_features(rank(QUERY, bare), bare) == ()


def test_feature_choices_drop_duplicates_and_refuse_both() -> None:
    c = FeatureChoices(("HP:0000316", "HP:0000316"), ("HP:0000154",))
    assert c.present == ("HP:0000316",) and c.absent == ("HP:0000154",)
    with pytest.raises(ValueError, match="both present and absent"):
        FeatureChoices(("HP:0000316",), ("HP:0000316",))
    assert FeatureChoices() == FeatureChoices((), ())


def test_phenopacket_writes_absent_terms_as_excluded_features(tiny) -> None:
    r = rank(QUERY, tiny)
    text = to_phenopacket_json(
        r,
        case_id="c",
        gallery_version="t1",
        hpo_ids=["HP:0000316"],
        excluded_hpo_ids=["HP:0000154", " HP:0000154", "HP:9999999"],
    )
    p = Parse(text, Phenopacket(), ignore_unknown_fields=False)
    assert [(f.type.id, f.type.label, f.excluded) for f in p.phenotypic_features] == [
        ("HP:0000316", "Hypertelorism", False),
        ("HP:0000154", "Wide mouth", True),
        ("HP:9999999", "", True),
    ]
    assert '"excluded": true' in text
    with pytest.raises(ValueError, match="both present and excluded"):
        to_phenopacket(
            r,
            case_id="c",
            gallery_version="t1",
            hpo_ids=["HP:0000316"],
            excluded_hpo_ids=["HP:0000316"],
        )
    with pytest.raises(ValueError, match="not HPO term ids"):
        to_phenopacket(r, case_id="c", gallery_version="t1", excluded_hpo_ids=["HP:316"])


def test_service_json_carries_the_choices_in_its_gmx_block(tiny) -> None:
    r = rank(QUERY, tiny)
    plain = to_service_json(r, case_id="c", model_version="m", gallery_version="t1")
    assert plain["gmx"]["confirmed_hpo"] == [] and plain["gmx"]["rejected_hpo"] == []
    out = to_service_json(
        r,
        case_id="c",
        model_version="m",
        gallery_version="t1",
        confirmed_hpo=("HP:0000316",),
        rejected_hpo=("HP:0000154", "HP:0000154"),
    )
    assert out["gmx"]["confirmed_hpo"] == ["HP:0000316"]
    assert out["gmx"]["rejected_hpo"] == ["HP:0000154"]
    # the GestaltMatcher service's fields are unchanged
    assert {k: v for k, v in out.items() if k != "gmx"} == {
        k: v for k, v in plain.items() if k != "gmx"
    }
