"""HPO labels come from the ontology shipped in the hpo3 wheel (offline); unknown ids fall back."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gmx import hpo
from gmx.synth.features import FEATURES


def test_real_ids_get_their_labels() -> None:
    assert hpo.hpo_label("HP:0000316") == "Hypertelorism"
    assert hpo.hpo_label("HP:0000154") == "Wide mouth"
    term = hpo.hpo_term(" HP:0000508 ")
    assert term.known and term.hpo_id == "HP:0000508" and term.label == "Ptosis"
    assert term.display == "Ptosis (HP:0000508)"
    assert hpo.describe(["HP:0000316", "HP:0000154"]) == (
        "Hypertelorism (HP:0000316), Wide mouth (HP:0000154)"
    )
    assert hpo.ontology_version()[:2] == "20"  # a release date


@pytest.mark.parametrize("bad", ["HP:9999999", "HP:316", "Hypertelorism", "", "OMIM:123456"])
def test_unknown_or_malformed_ids_fall_back_clearly(bad: str) -> None:
    term = hpo.hpo_term(bad)
    assert term.label is None and not term.known
    assert term.display == f"{bad} ({hpo.UNKNOWN_LABEL})"
    assert hpo.hpo_label(bad) is None


def test_every_synthetic_feature_names_its_real_hpo_term() -> None:
    """The demo's features imitate real HPO terms: the ids and the names agree with the ontology."""
    for feature in FEATURES:
        assert hpo.hpo_label(feature.hpo_id) is not None, feature.hpo_id
        assert hpo.hpo_label(feature.hpo_id).lower() == feature.hpo_name.lower(), feature.hpo_id


def test_labels_need_no_network() -> None:
    """The ontology is in the wheel: a fresh process with sockets disabled still labels terms."""
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('network disabled in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from gmx import hpo\n"
        "print(hpo.hpo_label('HP:0000316'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hypertelorism"


def test_warm_up_loads_once_in_the_background() -> None:
    hpo.warm_up()
    hpo.warm_up()
    assert len(hpo._WARMING) == 1
    hpo._WARMING[0].join(timeout=120)
    assert hpo._LOADED and hpo.hpo_label("HP:0000508") == "Ptosis"
