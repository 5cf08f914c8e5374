"""Gene table and Phenopacket exports of a ranking (tiny hand-made gallery)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from google.protobuf.json_format import Parse
from phenopackets import Interpretation, Phenopacket

import gmx
from gmx.gallery import (
    DEMO_NOTICE,
    DEMO_REFERENCE_ID,
    GENE_TSV_COLUMNS,
    Gallery,
    rank,
    to_gene_tsv,
    to_phenopacket,
    to_phenopacket_json,
    to_service_json,
)
from gmx.hpo import ontology_version

from ._gallery_fixtures import QUERY


def _rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t"))


def test_gene_tsv_rows_are_the_rankings_genes(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    text = to_gene_tsv(r)
    assert text.splitlines()[0].split("\t") == list(GENE_TSV_COLUMNS)
    rows = _rows(text)
    assert [row["gene"] for row in rows] == ["G1", "G2", "G3"]
    assert [row["syndrome"] for row in rows] == [
        "Alpha syndrome",
        "Alpha syndrome",
        "Beta syndrome",
    ]
    for row, m in zip(rows, r.genes, strict=True):
        assert row["syndrome_id"] == m.syndrome_id
        assert float(row["distance"]) == m.distance
        assert float(row["gestalt_score"]) == m.gestalt_score
        assert int(row["rank"]) == m.rank
    # the same genes as the service JSON's list
    service = to_service_json(r, case_id="c", model_version="m", gallery_version="t1", top_k=2)
    assert [g["gene_name"] for g in service["suggested_genes_list"]] == [
        row["gene"] for row in _rows(to_gene_tsv(r, top_k=2))
    ]
    assert not text.startswith("#")


def test_gene_tsv_demo_flag_and_bad_top_k(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    text = to_gene_tsv(r, top_k=1, demo=True)
    assert text.splitlines()[0] == f"# {DEMO_NOTICE}"
    assert len(_rows(text)) == 1
    with pytest.raises(ValueError, match="top_k"):
        to_gene_tsv(r, top_k=-1)


def _parsed(text: str) -> Phenopacket:
    """The JSON parsed back into the schema's message, strictly (an unknown field is an error)."""
    return Parse(text, Phenopacket(), ignore_unknown_fields=False)


def test_phenopacket_validates_and_holds_the_case(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    text = to_phenopacket_json(
        r,
        case_id="case-abc",
        gallery_version="t1",
        hpo_ids=["HP:0000316", " HP:0000154", "HP:0000316", "HP:9999999"],
        created=when,
    )
    json.loads(text)
    p = _parsed(text)
    assert p.id == "case-abc" and p.subject.id == "case-abc"
    assert [(f.type.id, f.type.label) for f in p.phenotypic_features] == [
        ("HP:0000316", "Hypertelorism"),
        ("HP:0000154", "Wide mouth"),
        ("HP:9999999", ""),
    ]
    # candidate syndromes in rank order: A (OMIM), C (OMIM), B (no OMIM: gallery id, with a note)
    assert [i.diagnosis.disease.id for i in p.interpretations] == [
        "OMIM:100100",
        "OMIM:300300",
        "gmx.gallery:B",
    ]
    assert [i.diagnosis.disease.label for i in p.interpretations] == [
        "Alpha syndrome",
        "Gamma syndrome",
        "Beta syndrome",
    ]
    assert [i.id for i in p.interpretations] == [f"case-abc-rank{k}" for k in (1, 2, 3)]
    assert all(
        i.progress_status == Interpretation.ProgressStatus.IN_PROGRESS for i in p.interpretations
    )
    assert "No OMIM number" in p.interpretations[2].summary
    assert "No OMIM" not in p.interpretations[0].summary
    assert "distance 0.2000" in p.interpretations[1].summary
    meta = p.meta_data
    assert meta.created.ToDatetime(tzinfo=UTC) == when
    assert meta.created_by == f"gmx {gmx.__version__}"
    assert meta.phenopacket_schema_version == "2.0"
    res = {x.id: x for x in meta.resources}
    assert res["hp"].version == ontology_version() and res["hp"].namespace_prefix == "HP"
    assert res["omim"].namespace_prefix == "OMIM"
    assert res["gmx.gallery"].version == "t1"
    assert list(meta.external_references) == []  # not the demo
    assert to_phenopacket(r, case_id="case-abc", gallery_version="t1", created=when) is not None


def test_phenopacket_demo_flag_and_top_k(tiny: Gallery) -> None:
    r = rank(QUERY, tiny)
    p = _parsed(to_phenopacket_json(r, case_id="c1", gallery_version="t1", top_k=2, demo=True))
    assert [i.diagnosis.disease.id for i in p.interpretations] == ["OMIM:100100", "OMIM:300300"]
    assert "gmx.gallery" not in {x.id for x in p.meta_data.resources}  # no gallery ids used
    refs = [(e.id, e.description) for e in p.meta_data.external_references]
    assert refs == [(DEMO_REFERENCE_ID, DEMO_NOTICE)]
    assert all(i.summary.startswith("DEMO.") for i in p.interpretations)
    assert list(p.phenotypic_features) == []


@pytest.mark.parametrize("bad", ["Hypertelorism", "HP:316", "OMIM:100100"])
def test_phenopacket_refuses_malformed_hpo_ids(tiny: Gallery, bad: str) -> None:
    with pytest.raises(ValueError, match="not HPO term ids"):
        to_phenopacket(rank(QUERY, tiny), case_id="c", gallery_version="t1", hpo_ids=[bad])
