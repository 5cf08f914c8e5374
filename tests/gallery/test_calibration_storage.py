"""The calibration stored in the gallery file (issue 12): round trip, checksum, older files.

Hand-computed values: the tiny gallery's leave-one-patient-out distances (``test_calibration``):
own ``[1.1, 1.1, 1.8, 1.8]``, other ``[0.04, 0.04, 0.5, 1.0]``, nearest (per image the smaller:
b1 0.04, b2 0.5, c1 1.0, c2 0.04) ``[0.04, 0.04, 0.5, 1.0]``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gmx.errors import GalleryError
from gmx.gallery import (
    Gallery,
    InvalidGalleryError,
    calibrate,
    gallery_info,
    load_gallery,
    save_gallery,
)

from ._gallery_fixtures import make_tiny, resign

UNAFFECTED = [0.9, 0.3, 0.6]


def _calibrated(g: Gallery | None = None) -> Gallery:
    g = make_tiny() if g is None else g
    return dataclasses.replace(
        g, calibration=calibrate(g, unaffected=UNAFFECTED, provenance="three made-up faces")
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(_calibrated(), p)
    c = load_gallery(p).calibration
    assert c is not None
    np.testing.assert_allclose(c.own_distances, [1.1, 1.1, 1.8, 1.8], atol=1e-6)
    np.testing.assert_allclose(c.other_distances, [0.04, 0.04, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(c.nearest_distances, [0.04, 0.04, 0.5, 1.0], atol=1e-6)
    assert c.unaffected_distances.tolist() == [0.3, 0.6, 0.9]  # sorted, exact (float64)
    assert (c.gallery_name, c.method, c.n_images, c.n_skipped_images) == (
        "tiny",
        "leave-one-patient-out",
        4,
        2,
    )
    assert c.skipped_syndromes == ("A",) and c.model_fingerprint == "f" * 64
    assert c.provenance == "three made-up faces"
    assert not c.own_distances.flags.writeable and not c.unaffected_distances.flags.writeable
    info = gallery_info(p)
    assert info.metadata_checksum == "verified"
    assert (info.calibration_method, info.calibration_images, info.calibration_unaffected) == (
        "leave-one-patient-out",
        4,
        3,
    )
    # the loaded statement is the computed one
    assert c.statement(0.6) == _calibrated().calibration.statement(0.6)


def test_gallery_without_calibration_still_loads(tmp_path: Path) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(make_tiny(), p)
    with sqlite3.connect(p) as con:
        assert con.execute("SELECT COUNT(*) FROM meta WHERE key='calibration'").fetchone() == (0,)
        assert con.execute(
            "SELECT COUNT(*) FROM arrays WHERE name LIKE 'calibration/%'"
        ).fetchone() == (0,)
    con.close()
    assert load_gallery(p).calibration is None
    info = gallery_info(p)
    assert (info.calibration_method, info.calibration_images, info.calibration_unaffected) == (
        None,
        None,
        None,
    )


def test_committed_gallery_of_an_older_gmx_loads_without_calibration(tmp_path: Path) -> None:
    # A file as gmx wrote it before calibrations were stored: no checksum entry for them, and
    # nothing to find; also without the metadata checksum (oldest files).
    p = tmp_path / "old.sqlite"
    save_gallery(make_tiny(), p)
    with sqlite3.connect(p) as con:
        con.execute("DELETE FROM meta WHERE key='metadata_sha256'")
    con.close()
    g = load_gallery(p)
    assert g.calibration is None
    save_gallery(_calibrated(g), p)  # calibrating an old file adds the checksum too
    assert gallery_info(p).metadata_checksum == "verified"
    assert load_gallery(p).calibration.n_unaffected == 3


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE meta SET value=replace(value, '\"n_images\": 4', '\"n_images\": 3') "
        "WHERE key='calibration'",
        "UPDATE arrays SET sha256='0' || substr(sha256, 2) WHERE name='calibration/unaffected'",
        "DELETE FROM meta WHERE key='calibration'",
    ],
)
def test_edited_calibration_is_refused_by_the_checksum(tmp_path: Path, edit: str) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(_calibrated(), p)
    with sqlite3.connect(p) as con:
        con.execute(edit)
    con.close()
    with pytest.raises(GalleryError, match="checksum"):
        load_gallery(p)


def test_damaged_calibration_distances_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(_calibrated(), p, compress=False)
    with sqlite3.connect(p) as con:
        (blob,) = con.execute(
            "SELECT data FROM array_chunks WHERE name='calibration/unaffected'"
        ).fetchone()
        bad = np.frombuffer(blob, "<f8").copy()
        bad[0] = 0.01  # an unaffected face made to look closer
        con.execute(
            "UPDATE array_chunks SET data=? WHERE name='calibration/unaffected'", (bad.tobytes(),)
        )
    con.close()
    with pytest.raises(GalleryError, match=r"calibration/unaffected.*checksum"):
        load_gallery(p)


def test_inconsistent_record_is_refused_even_when_resigned(tmp_path: Path) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(_calibrated(), p)
    with sqlite3.connect(p) as con:
        rec = json.loads(
            con.execute("SELECT value FROM meta WHERE key='calibration'").fetchone()[0]
        )
        rec["n_images"] = 3  # 4 own distances are stored
        con.execute("UPDATE meta SET value=? WHERE key='calibration'", (json.dumps(rec),))
        resign(con)
    con.close()
    with pytest.raises(GalleryError, match="calibration is inconsistent"):
        load_gallery(p)


def test_newer_calibration_format_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(_calibrated(), p)
    with sqlite3.connect(p) as con:
        rec = json.loads(
            con.execute("SELECT value FROM meta WHERE key='calibration'").fetchone()[0]
        )
        rec["format"] = 2
        con.execute("UPDATE meta SET value=? WHERE key='calibration'", (json.dumps(rec),))
        resign(con)
    con.close()
    with caplog.at_level(logging.WARNING):
        g = load_gallery(p)
    assert g.calibration is None and "format 2" in caplog.text
    assert len(g) == 6


def test_gallery_refuses_another_gallerys_calibration() -> None:
    other = make_tiny(name="other")
    with pytest.raises(InvalidGalleryError, match="does not belong"):
        dataclasses.replace(make_tiny(), calibration=calibrate(other))
    stale = make_tiny(model_fingerprint="e" * 64)
    with pytest.raises(InvalidGalleryError, match="recalibrate"):
        dataclasses.replace(make_tiny(), calibration=calibrate(stale))
    with pytest.raises(InvalidGalleryError, match="must be a Calibration"):
        make_tiny(calibration={"own": [1.0]})


def test_subset_drops_the_calibration() -> None:
    g = _calibrated()
    assert g.calibration is not None
    assert g.subset([0, 2, 4]).calibration is None
