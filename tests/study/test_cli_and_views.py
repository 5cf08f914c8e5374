from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from gmx.cli import main
from gmx.config import DEMO_DIR
from gmx.study import StudyStore, load_study
from gmx.study.cases import demo_case_ids, demo_truth
from gmx.study.regions import Annotation
from gmx.study.views import (
    DISPLAY_PX,
    STUDY_DB_ENV,
    STUDY_ENV,
    demo_pilot,
    display_to_template,
    map_picture,
    marks_picture,
    study_location,
)

needs_demo = pytest.mark.skipif(
    not (DEMO_DIR / "synth_metadata.csv").exists(), reason="demo data not built"
)


@needs_demo
def test_new_check_export(tmp_path, capsys):
    out = tmp_path / "s.toml"
    assert main(["study", "new", "--demo", "4", "--out", str(out)]) == 0
    assert main(["study", "new", "--out", str(out)]) == 2  # exists, no --force
    study = load_study(out)
    assert study.cases == tuple(demo_case_ids(DEMO_DIR)[:4])
    assert main(["study", "check", str(out)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(out.read_text().replace('"gradcam"', '"nomethod"').replace(study.cases[0], "zz"))
    assert main(["study", "check", str(bad)]) == 1
    assert "unknown ['nomethod']" in capsys.readouterr().out

    db = tmp_path / "a.sqlite"
    StudyStore(db, fingerprint=study.fingerprint).save(
        "R01", study.cases[0], "ai", "initial_confidence", 3
    )
    assert main(["study", "export", str(db)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["rater"] == "R01" and rows[0]["value"] == "3"
    assert main(["study", "export", str(db), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["answers"][0]["value"] == 3
    assert main(["study", "export", str(tmp_path / "none.sqlite")]) == 2


@needs_demo
def test_analyse_cli_without_maps(tmp_path, capsys):
    out = tmp_path / "s.toml"
    main(["study", "new", "--demo", "3", "--out", str(out)])
    study = load_study(out)
    db = tmp_path / "a.sqlite"
    truth = demo_truth(DEMO_DIR)
    st = StudyStore(db, fingerprint=study.fingerprint)
    for r in ("R1", "R2"):
        c = study.cases[0]
        st.save(r, c, "ai", "initial_guess", "SYN:0009")
        st.save(r, c, "ai", "initial_confidence", 1)
        st.save(r, c, "ai", "final_guess", truth[c])
        st.save(r, c, "ai", "final_confidence", 5)
    assert (
        main(["study", "analyse", str(db), "--study", str(out), "--no-maps", "--format", "json"])
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    (arm,) = res["arms"]
    assert (arm["pairs"], arm["accuracy_initial"], arm["accuracy_final"]) == (2, 0.0, 1.0)
    assert arm["mcnemar_p"] == 0.5 and arm["confidence_change"] == 4.0


def test_display_to_template_and_pictures():
    assert display_to_template(168, 84, DISPLAY_PX, DISPLAY_PX) == (56.0, 28.0)
    with pytest.raises(ValueError):
        display_to_template(1, 1, 0, 10)
    face = np.full((112, 112, 3), 100, np.uint8)
    before = face.copy()
    pic = marks_picture(face, Annotation(points=((56.0, 56.0),), cells=(0,)))
    assert pic.shape == (DISPLAY_PX, DISPLAY_PX, 3) and np.array_equal(face, before)
    assert not np.array_equal(pic[:50, :50], np.full((50, 50, 3), 100))  # shaded cell
    m = map_picture(face, np.linspace(-1, 1, 112 * 112).reshape(112, 112))
    assert m.shape == face.shape and np.array_equal(face, before)


def test_study_location(tmp_path):
    loc = study_location({STUDY_ENV: str(tmp_path / "s.toml")})
    assert loc.db_path == tmp_path / "s.answers.sqlite"
    loc = study_location({STUDY_DB_ENV: str(tmp_path / "x.sqlite"), "GMX_CACHE_DIR": str(tmp_path)})
    assert loc.study_path is None and loc.db_path == tmp_path / "x.sqlite"
    loc = study_location({"GMX_CACHE_DIR": str(tmp_path)})
    assert loc.db_path == tmp_path / "study" / "demo-pilot.sqlite"


@needs_demo
def test_demo_pilot_uses_held_out_cases_of_different_syndromes():
    s = demo_pilot(DEMO_DIR)
    truth = demo_truth(DEMO_DIR)
    test_ids = set(demo_case_ids(DEMO_DIR))
    assert set(s.cases) <= test_ids and len({truth[c] for c in s.cases}) == len(s.cases) == 3
    assert s.composite_syndromes == tuple(sorted(truth[c] for c in s.cases))
