from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmx.errors import GalleryError
from gmx.gallery import GalleryImage, import_gmdb, read_lookup_table

V = "v1.0.3"


def write_gmdb(folder: Path, version: str = V, *, with_lookup: bool = True) -> Path:
    """Small GMDB metadata in the true layout (comma CSVs, a tab-separated syndrome list)."""
    folder.mkdir(parents=True, exist_ok=True)
    sfx = f"_{version}" if version else ""

    def csv(name: str, header: str, rows: list[str]) -> None:
        (folder / f"{name}{sfx}.csv").write_text("\n".join([header, *rows]) + "\n")

    csv(
        "gmdb_frequent_gallery_images",
        "image_id,subject,label",
        ["101,11,1", "102,11,1", "103,12,2"],
    )
    csv("gmdb_frequent_test_images", "image_id,subject,label", ["201,21,1", "202,22,2"])
    # the rare lists repeat an image across splits (one row per split)
    csv(
        "gmdb_rare_gallery_images",
        "image_id,subject,label,split",
        ["301,31,5,0", "302,32,5,1", "301,31,5,2", "303,33,6,0"],
    )
    csv("gmdb_rare_test_images", "image_id,subject,label,split", ["401,41,5,0", "402,42,6,1"])
    csv("gmdb_train_images", "image_id,subject,label", ["501,51,1", "502,52,2"])
    csv("gmdb_val_images", "image_id,subject,label", ["601,61,2"])
    (folder / f"gmdb_syndromes{sfx}.tsv").write_text(
        "syndrome_id\tsyndrome_name\tnum_subjects\tOMIM\n"
        "1\tCornelia de Lange syndrome\t40\t122470\n"
        "2\tSMITH-MAGENIS SYNDROME; SMS\t30\t182290.0\n"
        "5\tDDX23\t3\t\n"
        "6\tRare six\t2\tnan\n"
        "7\tUnused\t0\t\n"
    )
    if with_lookup:
        (folder / f"lookup_table_gmdb{sfx}.txt").write_text(
            "index_id to disorder_id\n" + json.dumps([1, 2]) + "\n"
        )
    return folder


def test_gallery_both_kinds(tmp_path: Path) -> None:
    t = import_gmdb(write_gmdb(tmp_path))
    assert t.version == V
    assert t.sources == ("frequent_gallery", "rare_gallery")
    images = t.images()
    assert images == (
        GalleryImage("101", "11", "1"),
        GalleryImage("102", "11", "1"),
        GalleryImage("103", "12", "2"),
        GalleryImage("301", "31", "5", "0,2"),
        GalleryImage("302", "32", "5", "1"),
        GalleryImage("303", "33", "6", "0"),
    )
    s = t.syndromes
    assert (s["1"].name, s["1"].omim) == ("Cornelia de Lange syndrome", "122470")
    assert s["2"].omim == "182290" and s["5"].omim is None and s["6"].omim is None
    assert [x.syndrome_id for x in t.syndromes_of(images)] == ["1", "2", "5", "6"]
    assert t.lookup_table == ("1", "2")
    assert len(t.files) == 4


def test_all_splits_and_kinds(tmp_path: Path) -> None:
    folder = write_gmdb(tmp_path)
    t = import_gmdb(folder, split="all", kind="frequent")
    assert t.sources == ("frequent_gallery", "frequent_test", "train", "val")
    assert [im.image_id for im in t.images(["frequent_test"])] == ["201", "202"]
    rare = import_gmdb(folder, split="all", kind="rare")
    assert rare.sources == ("rare_gallery", "rare_test")
    assert [(r.image_id, r.split) for r in rare.records if r.source == "rare_test"] == [
        ("401", 0),
        ("402", 1),
    ]


def test_version_lenient(tmp_path: Path) -> None:
    folder = write_gmdb(tmp_path / "v1.0.3" / "gmdb_metadata")
    # "1.0.3" finds "v1.0.3" files; the release folder is searched for gmdb_metadata/
    assert import_gmdb(tmp_path / "v1.0.3", "1.0.3").version == V
    assert import_gmdb(folder, "v1.0.3", kind="frequent").sources == ("frequent_gallery",)
    plain = write_gmdb(tmp_path / "plain", version="")
    assert import_gmdb(plain).version == ""
    with pytest.raises(GalleryError, match=r"version '9.9'.*v1.0.3"):
        import_gmdb(folder, "9.9")


def test_several_versions_need_a_choice(tmp_path: Path) -> None:
    write_gmdb(tmp_path, V)
    write_gmdb(tmp_path, "v1.0.9", with_lookup=False)
    with pytest.raises(GalleryError, match="several GMDB versions"):
        import_gmdb(tmp_path)
    t = import_gmdb(tmp_path, "v1.0.9")
    assert t.version == "v1.0.9"


def test_missing_file(tmp_path: Path) -> None:
    folder = write_gmdb(tmp_path)
    (folder / f"gmdb_rare_test_images_{V}.csv").unlink()
    import_gmdb(folder)  # gallery only: the test list is not needed
    with pytest.raises(GalleryError, match="gmdb_rare_test_images"):
        import_gmdb(folder, V, split="all")
    with pytest.raises(GalleryError, match="does not exist"):
        import_gmdb(tmp_path / "nothing")


def test_missing_column(tmp_path: Path) -> None:
    folder = write_gmdb(tmp_path)
    (folder / f"gmdb_rare_gallery_images_{V}.csv").write_text("image_id,subject,label\n301,31,5\n")
    with pytest.raises(GalleryError, match=r"lacks columns \['split'\]"):
        import_gmdb(folder)
    (folder / f"gmdb_syndromes_{V}.tsv").write_text("id\tname\n1\tx\n")
    with pytest.raises(GalleryError, match="syndrome_id"):
        import_gmdb(folder, kind="frequent")


def test_unknown_label_and_conflicts(tmp_path: Path) -> None:
    folder = write_gmdb(tmp_path)
    (folder / f"gmdb_frequent_gallery_images_{V}.csv").write_text(
        "image_id,subject,label\n101,11,99\n"
    )
    with pytest.raises(GalleryError, match=r"not in gmdb_syndromes.*'99'"):
        import_gmdb(folder)
    (folder / f"gmdb_frequent_gallery_images_{V}.csv").write_text(
        "image_id,subject,label\n301,11,1\n"
    )
    t = import_gmdb(folder)
    with pytest.raises(GalleryError, match="image '301'"):
        t.images()


def test_float_formatted_ids(tmp_path: Path) -> None:
    folder = write_gmdb(tmp_path)
    (folder / f"gmdb_frequent_gallery_images_{V}.csv").write_text(
        "image_id,subject,label\n101.0,11.0,1.0\n"
    )
    assert import_gmdb(folder, kind="frequent").images() == (GalleryImage("101", "11", "1"),)


def test_lookup_table(tmp_path: Path) -> None:
    p = tmp_path / "lookup_table_gmdb.txt"
    p.write_text("index_id to disorder_id\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]\n")
    assert read_lookup_table(p) == tuple(str(i) for i in range(14))
    p.write_text("index_id to disorder_id\n{'a': 1}\n")
    with pytest.raises(GalleryError, match="not valid JSON"):
        read_lookup_table(p)
    p.write_text("index_id to disorder_id\n[[1, 2]]\n")
    with pytest.raises(GalleryError, match="list of syndrome ids"):
        read_lookup_table(p)


def test_lookup_of_another_release_not_used(tmp_path: Path) -> None:
    write_gmdb(tmp_path, V)
    write_gmdb(tmp_path, "v1.0.9", with_lookup=False)
    assert import_gmdb(tmp_path, "v1.0.9").lookup_table is None
    assert import_gmdb(tmp_path, V).lookup_table == ("1", "2")
