"""Study cases from a real gallery: a small gallery built by the library from demo photos with the
demo model and read back from its file (tests/study/galleries.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from gmx.cli import main
from gmx.config import DEMO_DIR, GmxConfig
from gmx.gallery import calibrate, load_gallery, rank
from gmx.study import analyse, load_study, new_template, study_from_text, to_markdown
from gmx.study.analysis import TRUTH_NOT_AVAILABLE
from gmx.study.cases import (
    case_material,
    case_source_config,
    gallery_case_ids,
    leave_patient_out,
    load_cases,
    load_source,
)
from gmx.study.definition import CASE_SOURCE_GALLERY, StudyError
from tests.study.galleries import PATIENTS, PHOTOS, SYNDROMES, build_study_gallery

pytestmark = pytest.mark.skipif(
    not (DEMO_DIR / "synth_faces.npz").exists(), reason="demo data not built"
)


def _gallery_study(folder, gallery_value: str, ids, *, methods='["gradcam"]') -> object:
    text = new_template(cases=ids, gallery=gallery_value).replace(
        'methods = ["gradcam", "hirescam"]', f"methods = {methods}"
    )
    path = folder / "study.toml"
    path.write_text(text)
    return path


def test_template_parses_and_fingerprint_of_demo_studies_is_unchanged():
    demo = study_from_text(new_template(cases=("a", "b", "c")))
    old = (demo.seed, demo.cases, demo.cases_per_rater, demo.methods, demo.arms, demo.randomise)
    # demo databases written before gallery sources keep opening
    assert demo.fingerprint == hashlib.sha256(repr(old).encode()).hexdigest()[:16]
    gal = study_from_text(new_template(cases=("a", "b", "c"), gallery="g.sqlite"))
    assert (gal.case_source, gal.case_gallery) == (CASE_SOURCE_GALLERY, "g.sqlite")
    assert gal.fingerprint != demo.fingerprint
    other = study_from_text(new_template(cases=("a", "b", "c"), gallery="other.sqlite"))
    assert other.fingerprint != gal.fingerprint
    with pytest.raises(StudyError, match=r"needs cases\.gallery"):
        study_from_text(new_template(cases=("a",), gallery=""))
    with pytest.raises(StudyError, match="only read with"):
        study_from_text(new_template(cases=("a",)).replace("ids = [", 'gallery = "x"\nids = ['))


def test_gallery_cases_come_from_the_gallery_file(study_gallery, tmp_path):
    gallery = load_gallery(study_gallery)
    ids = gallery_case_ids(gallery, 4)
    # one image per syndrome in turn, each syndrome with two or more patients
    assert [gallery.images[gallery.index_of(i)].syndrome_id for i in ids] == [
        *SYNDROMES,
        SYNDROMES[0],
    ]
    path = _gallery_study(tmp_path, study_gallery.name, ids)
    (tmp_path / study_gallery.name).symlink_to(study_gallery)  # relative to the study file
    study = load_study(path)
    cfg = case_source_config(study, GmxConfig(), study_dir=path.parent)
    assert cfg.gallery_path == (tmp_path / study_gallery.name).absolute()
    assert cfg.model_paths == GmxConfig().model_paths
    named = case_source_config(study, GmxConfig(), model_sets={study_gallery.name: "SET"})
    assert named == "SET"  # a model set of that name wins over a file
    cases = load_cases(study, DEMO_DIR, load_gallery(cfg.gallery_path))
    for i in ids:
        n = gallery.index_of(i)
        assert np.array_equal(cases.faces[i], gallery.photos[n])
        assert not cases.faces[i].flags.writeable
        assert cases.labels[i] == gallery.images[n].syndrome_id
        assert cases.subjects[i] == gallery.images[n].subject_id
    assert not cases.masks and not cases.regions_known  # a real gallery: no true regions
    assert cases.syndrome_names["SYN:0001"] == gallery.syndromes["SYN:0001"].name


def test_each_case_is_ranked_leave_one_patient_out_as_calibrate_counts(study_gallery):
    models, gallery = load_source(GmxConfig(gallery_path=study_gallery, device="cpu"))
    assert len(set(gallery.subject_ids)) == len(SYNDROMES) * PATIENTS
    assert len(SYNDROMES) * PATIENTS < len(gallery) <= len(SYNDROMES) * PATIENTS * PHOTOS
    top1 = []
    for n, im in enumerate(gallery.images):
        face = gallery.photos[n]
        mat = case_material(models, gallery, face, methods=(), top_k=3,
                            exclude_subject=im.subject_id)  # fmt: skip
        want = rank(gallery.embeddings[n], gallery, exclude_subjects=[im.subject_id], top_k=3)
        assert [s.syndrome_id for s in mat.suggestions] == [m.syndrome_id for m in want.syndromes]
        np.testing.assert_allclose([s.distance for s in mat.suggestions],
                                   [m.distance for m in want.syndromes], atol=1e-5)  # fmt: skip
        top1.append(mat.suggestions[0].distance)
        # without leaving the patient out the case finds itself (distance 0): what the old code did
        itself = case_material(models, gallery, face, methods=(), top_k=1)
        assert itself.suggestions[0].distance < 1e-5 < mat.suggestions[0].distance
    # the same numbers `gmx gallery calibrate` counts (nearest own/other-patient distance)
    np.testing.assert_allclose(sorted(top1), calibrate(gallery).nearest_distances, atol=1e-5)


def test_maps_target_another_patient(study_gallery):
    models, gallery = load_source(GmxConfig(gallery_path=study_gallery, device="cpu"))
    im = gallery.images[0]
    lopo = leave_patient_out(gallery, im.subject_id)
    assert im.subject_id not in {x.subject_id for x in lopo.images}
    own = sum(x.subject_id == im.subject_id for x in gallery.images)
    assert len(lopo) == len(gallery) - own and lopo.photos is None
    assert leave_patient_out(gallery, None) is gallery
    mat = case_material(models, gallery, gallery.photos[0], methods=["gradcam"], top_k=2,
                        exclude_subject=im.subject_id)  # fmt: skip
    assert mat.maps["gradcam"].shape == (112, 112)
    assert np.isfinite(mat.maps["gradcam"]).all() and np.ptp(mat.maps["gradcam"]) > 0


def test_check_refuses_a_gallery_without_photos(study_gallery, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    gallery = load_gallery(study_gallery)
    ids = gallery_case_ids(gallery, 3)
    ok = _gallery_study(tmp_path, str(study_gallery), ids)
    assert main(["study", "check", str(ok)]) == 0
    assert "ok" in capsys.readouterr().out

    bare = build_study_gallery(tmp_path, photos=False)
    bad = _gallery_study(tmp_path, str(bare), ids)
    assert main(["study", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "stores no photos" in out and "needs a gallery built with its photos" in out

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    p = build_study_gallery(hidden, visible=False)
    assert main(["study", "check", str(_gallery_study(hidden, str(p), ids))]) == 1
    assert "may not be shown" in capsys.readouterr().out

    missing = _gallery_study(tmp_path, str(study_gallery), [*ids[:2], "nope"])
    assert main(["study", "check", str(missing)]) == 1
    missing_out = capsys.readouterr().out
    assert "not in gallery" in missing_out and "nope" in missing_out

    nofile = _gallery_study(tmp_path, "no_such_set", ids)
    assert main(["study", "check", str(nofile)]) == 1
    assert "neither a model set" in capsys.readouterr().out
    with pytest.raises(StudyError, match="stores no photos"):
        load_cases(load_study(bad), DEMO_DIR, load_gallery(bare))


def test_check_and_new_with_a_model_set(study_gallery, tmp_path, capsys, monkeypatch):
    config = tmp_path / "gmx.toml"
    config.write_text(f'[model_sets."study set"]\nmodels = ["{GmxConfig().model_paths[0]}"]\n'
                      f'gallery = "{study_gallery}"\n')  # fmt: skip
    monkeypatch.setenv("GMX_CONFIG", str(config))
    out = tmp_path / "s.toml"
    assert main(["study", "new", "--gallery", "study set", "--cases", "3", "--out", str(out)]) == 0
    study = load_study(out)
    assert (study.case_source, study.case_gallery) == (CASE_SOURCE_GALLERY, "study set")
    assert len(study.cases) == 3 and study.cases_per_rater == 3
    assert main(["study", "check", str(out)]) == 0
    assert main(["study", "new", "--gallery", "study set", "--demo", "2"]) == 2


def test_new_simulate_analyse_on_gallery_cases(study_gallery, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    out = tmp_path / "s.toml"
    assert main(["study", "new", "--gallery", str(study_gallery), "--out", str(out)]) == 0
    text = out.read_text().replace('methods = ["gradcam", "hirescam"]', 'methods = ["gradcam"]')
    out.write_text(text)
    study = load_study(out)
    assert study.case_gallery == str(study_gallery.resolve()) and len(study.cases) == 6
    assert main(["study", "check", str(out)]) == 0
    db = tmp_path / "a.sqlite"
    assert main(["study", "simulate", str(db), "--study", str(out), "--raters", "2"]) == 0
    capsys.readouterr()
    assert main(["study", "analyse", str(db), "--study", str(out), "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["raters"] == 2 and got["truth"] is None and got["regions_known"] is False
    assert any(r["method"] == "gradcam" and r["n"] > 0 for r in got["regions"])
    assert got["arms"]  # accuracy is scored against the gallery labels
    assert main(["study", "analyse", str(db), "--study", str(out), "--no-maps"]) == 0
    md = capsys.readouterr().out
    assert TRUTH_NOT_AVAILABLE in md and "hit rate" not in md


def test_truth_not_available_instead_of_numbers(tiny_study):
    res = analyse(tiny_study, [], truth={}, masks={})
    assert not res.regions_known and TRUTH_NOT_AVAILABLE in to_markdown(res)
    empty = {c: np.zeros((112, 112), bool) for c in tiny_study.cases}
    assert not analyse(tiny_study, [], truth={}, masks=empty).regions_known
    mask = dict(empty, c1=np.ones((112, 112), bool))
    res = analyse(tiny_study, [], truth={}, masks=mask)
    assert res.regions_known and TRUTH_NOT_AVAILABLE not in to_markdown(res)
