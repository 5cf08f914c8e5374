from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from gmx.errors import GalleryError
from gmx.gallery import (
    EncodingTable,
    Gallery,
    gallery_from_encodings,
    image_id_from_name,
    rank,
    read_encodings,
    write_encodings,
)
from gmx.gallery._encodings import parse_float_list
from gmx.variants import Variant, tta_variants

from ._gallery_fixtures import make_tiny

HEADER = "img_name;model;flip;gray;class_conf;representations\n"


def test_parse_float_list() -> None:
    np.testing.assert_array_equal(
        parse_float_list("[1, -2.5, 3e-2, .5, 7.]"), [1, -2.5, 0.03, 0.5, 7.0]
    )
    assert parse_float_list("[]").size == 0
    for bad in [
        "__import__('os').system('x')",
        "[1, nan]",
        "[inf]",
        "[1,, 2]",
        "[[1]]",
        "1, 2",
        "[1_000]",
        "[0x10]",
        "[1e999]",
    ]:
        with pytest.raises(ValueError):
            parse_float_list(bad)


def test_image_id_from_name() -> None:
    assert image_id_from_name("4883_crop_square.jpg") == "4883"
    assert image_id_from_name("0042_aligned.png") == "42"
    assert image_id_from_name("case7.jpg") == "case7"


def test_gallery_round_trip_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    g = make_tiny(embeddings=rng.standard_normal((6, 2, 2)).astype(np.float32))
    path = write_encodings(g, tmp_path / "all_encodings.csv")
    text = path.read_text().splitlines()
    assert text[0] == HEADER.strip()
    assert text[1].startswith("a1;m0;0;0;[0];[") and text[2].startswith("a1;m0;1;0;[0];[")
    t = read_encodings(path)
    assert t.image_ids == tuple(im.image_id for im in g.images)
    assert t.variants == g.variants and t.model_names == ("m0",)
    assert t.embeddings.tobytes() == g.embeddings.tobytes()
    assert [c.shape for c in t.class_conf] == [(6, 1), (6, 1)]
    back = gallery_from_encodings("again", "1", g.images, g.syndromes, t, g.model_fingerprint)
    assert back.embeddings.tobytes() == g.embeddings.tobytes()


def _upstream_rows(
    rng: np.random.Generator, ids: list[str], n_models: int = 2, dim: int = 4
) -> tuple[str, np.ndarray]:
    """Rows as predict_ensemble.py writes them: per image, models m0.., flip [0,1], gray [0,1]."""
    lines = [HEADER]
    emb = rng.standard_normal((len(ids), n_models * 4, dim)).astype(np.float32)
    for i, iid in enumerate(ids):
        k = 0
        for m in range(n_models):
            for flip in (0, 1):
                for gray in (0, 1):
                    conf = "[0]" if m == 1 else "[0.25, 0.75]"
                    vec = emb[i, k].astype(np.float64).tolist()
                    lines.append(f"{iid}_crop_square.jpg;m{m};{flip};{gray};{conf};{vec}\n")
                    k += 1
    return "".join(lines), emb


def test_upstream_layout_any_row_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    text, emb = _upstream_rows(rng, ["11", "12", "13"])
    lines = text.splitlines(keepends=True)
    # models are numbered by first appearance: keep the first image's rows (m0 before m1) first and
    # shuffle every other row; the variants still come out model-major, flip, grey.
    first = [lines[1:9][i] for i in rng.permutation(8)]
    first.sort(key=lambda row: row.split(";")[1])  # stable: flip/gray order stays shuffled
    rest = [lines[9:][i] for i in rng.permutation(len(lines) - 9)]
    p = tmp_path / "enc.csv"
    p.write_text(lines[0] + "".join(first) + "".join(rest))
    t = read_encodings(p)
    assert set(t.image_ids) == {"11", "12", "13"}
    assert t.variants == tta_variants(2)
    for i, iid in enumerate(["11", "12", "13"]):
        np.testing.assert_array_equal(t.embeddings[t.index_of(iid)], emb[i])
    assert t.class_conf[0].shape == (3, 2) and t.class_conf[4].shape == (3, 1)
    assert not t.embeddings.flags.writeable


def test_model_names_numbered_by_first_appearance(tmp_path: Path) -> None:
    p = tmp_path / "enc.csv"
    p.write_text(HEADER + "1_a.jpg;r100;0;0;[0];[1.0, 0.0]\n1_a.jpg;r50;0;0;[0];[0.0, 1.0]\n")
    t = read_encodings(p)
    assert t.model_names == ("r100", "r50")
    assert t.variants == (Variant(0), Variant(1))
    np.testing.assert_array_equal(t.embeddings[0], [[1, 0], [0, 1]])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1_a.jpg;m0;0;0;[0];__import__('os')\n", "bad representations"),
        ("1_a.jpg;m0;0;0;[0];[1.0, 2.0]\n1_a.jpg;m0;0;0;[0];[1.0, 2.0]\n", "twice"),
        ("1_a.jpg;m0;0;0;[0];[1.0, 2.0]\n2_a.jpg;m0;0;0;[0];[1.0]\n", "2 numbers|1 numbers"),
        (
            "1_a.jpg;m0;0;0;[0];[1.0, 2.0]\n1_a.jpg;m0;1;0;[0];[1.0, 2.0]\n2_a.jpg;m0;0;0;[0];[1.0, 2.0]\n",
            "has variants",
        ),
        ("1_a.jpg;m0;2;0;[0];[1.0, 2.0]\n", "flip must be 0/1"),
        ("1_a.jpg;m0;0;0;[0]\n", "expected 6 fields"),
        ("1_a.jpg;m0;0;0;[0];[1.0]\n1_b.jpg;m0;0;0;[0];[1.0]\n", "both give image id '1'"),
    ],
)
def test_bad_files(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "enc.csv"
    p.write_text(HEADER + body)
    with pytest.raises(GalleryError, match=message):
        read_encodings(p)


def test_missing_columns(tmp_path: Path) -> None:
    p = tmp_path / "enc.csv"
    p.write_text("img_name,model,flip,gray,class_conf,representations\n1_a.jpg,m0,0,0,[0],[1.0]\n")
    with pytest.raises(GalleryError, match="lacks columns"):
        read_encodings(p)


def test_pickle_refused_then_allowed(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "img_name": ["5_x.jpg", "5_x.jpg"],
            "model": ["m0", "m0"],
            "flip": [0, 1],
            "gray": [0, 0],
            "class_conf": [[0], [0]],
            "representations": [np.array([1.0, 2.0]), np.array([3.0, 4.0])],
        }
    )
    p = tmp_path / "gallery_encodings.pkl"
    df.to_pickle(p)
    with pytest.raises(GalleryError, match="allow_pickle=True"):
        read_encodings(p)
    disguised = tmp_path / "enc.csv"
    disguised.write_bytes(p.read_bytes())
    with pytest.raises(GalleryError, match="is a pickle"):
        read_encodings(disguised)
    with pytest.warns(UserWarning, match="arbitrary code"):
        t = read_encodings(p, allow_pickle=True)
    assert t.image_ids == ("5",) and t.variants == (Variant(0), Variant(0, True))
    np.testing.assert_array_equal(t.embeddings[0], [[1, 2], [3, 4]])


def test_pickle_without_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    p = tmp_path / "x.pkl"
    p.write_bytes(b"\x80\x04N.")
    real_import = builtins.__import__

    def no_pandas(name: str, *args: object, **kwargs: object) -> object:
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(GalleryError, match="pandas is not installed"):
            read_encodings(p, allow_pickle=True)


def test_write_refuses_ids_upstream_cannot_read(tmp_path: Path) -> None:
    emb = np.zeros((1, 1, 2), np.float32)
    emb.setflags(write=False)
    t = EncodingTable(
        ("a_b",), ("a_b",), (Variant(0),), ("m0",), emb, (np.zeros((1, 1), np.float32),)
    )
    with pytest.raises(ValueError, match="cannot contain '_'"):
        write_encodings(t, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_gallery_from_encodings_missing(tmp_path: Path, tiny: Gallery) -> None:
    p = tmp_path / "enc.csv"
    write_encodings(tiny.subset([0, 1, 2, 3, 4], name="five"), p)
    t = read_encodings(p)
    with pytest.raises(GalleryError, match="1 of 6 gallery images have no encoding"):
        gallery_from_encodings("g", "1", tiny.images, tiny.syndromes, t, "fp")
    g = gallery_from_encodings("g", "1", tiny.images, tiny.syndromes, t, "fp", missing="drop")
    assert len(g) == 5
    q = tiny.embeddings[0]
    assert rank(q, g).syndromes[0].syndrome_id == "A"
