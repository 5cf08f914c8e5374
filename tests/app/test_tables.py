"""The app's tables: HPO labels, plain-language help for distance and gestalt score, and OMIM/genes
cells that say why they are empty (real demo and tiny galleries, real rankings)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gmx.config import load_config
from gmx.constants import GESTALT_SCORE_OFFSET
from gmx.gallery import load_gallery, rank
from ui import tables

ROOT = Path(__file__).resolve().parents[2]


def _config(column) -> dict:
    return column if isinstance(column, dict) else dict(column)


def test_demo_rows_show_hpo_labels_and_say_why_omim_and_genes_are_empty(monkeypatch) -> None:
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    gallery = load_gallery(load_config().gallery_path)
    ranking = rank(gallery.embeddings[0], gallery)
    rows = tables.syndrome_table(ranking, gallery, 5, show_photos=False)
    assert len(rows) == 5
    for row in rows:
        assert row["OMIM"] == tables.SYNTHETIC_NO_OMIM
        assert row["genes"] == tables.SYNTHETIC_NO_GENES
        assert "HP:" in row["HPO features"] and "not in the HPO" not in row["HPO features"]
    a = next(r for r in rows if r["syndrome"].startswith("Synthetic syndrome A"))
    assert a["HPO features"] == "Hypertelorism (HP:0000316), Wide mouth (HP:0000154)"


def test_real_gallery_rows_say_what_the_metadata_lacks(tiny_setup) -> None:
    gallery = load_gallery(tiny_setup.gallery_path)
    first = next(iter(gallery.syndromes))
    syndromes = {
        k: dataclasses.replace(v, omim=None, genes=(), hpo=()) for k, v in gallery.syndromes.items()
    }
    syndromes[first] = dataclasses.replace(
        syndromes[first], omim="122470", genes=("NIPBL",), hpo=("HP:0000316", "HP:9999999")
    )
    gallery = dataclasses.replace(gallery, syndromes=syndromes)
    ranking = rank(gallery.embeddings[0], gallery)
    rows = {r["syndrome"]: r for r in tables.syndrome_table(ranking, gallery, 3, show_photos=False)}
    filled = rows[gallery.syndromes[first].name]
    assert filled["OMIM"] == "122470" and filled["genes"] == "NIPBL"
    assert filled["HPO features"].startswith("Hypertelorism (HP:0000316), HP:9999999 (not in")
    for name, row in rows.items():
        if name != gallery.syndromes[first].name:
            assert row["OMIM"] == tables.NO_OMIM
            assert row["genes"] == row["HPO features"] == tables.NOT_IN_METADATA


def test_distance_and_gestalt_score_are_explained_not_probabilities() -> None:
    gestalt = _config(tables.SYNDROME_COLUMNS["gestalt_score"])
    assert gestalt["type_config"]["max_value"] == GESTALT_SCORE_OFFSET
    for help_text in (tables.DISTANCE_HELP, tables.GESTALT_HELP):
        assert "not a probability" in help_text or "not the probability" in help_text
    assert _config(tables.SYNDROME_COLUMNS["distance"])["help"] == tables.DISTANCE_HELP
    assert gestalt["help"] == tables.GESTALT_HELP
    for name in ("OMIM", "genes", "HPO features"):
        assert _config(tables.SYNDROME_COLUMNS[name]).get("help")
    assert _config(tables.GENE_COLUMNS["distance"])["help"] == tables.DISTANCE_HELP


def test_no_gestalt_offset_literal_in_the_app() -> None:
    """The gestalt-score maximum comes from gmx.constants, never a 1.3 typed into ui/."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "ui").glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![\d.])1\.3(?!\d)", line)
    ]
    assert not offenders, offenders
