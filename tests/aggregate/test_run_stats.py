"""Resumable/sharded runs, statistics with hand-computed values, results round trip, CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from gmx.aggregate import (
    BatchStoreError,
    Shard,
    auroc,
    load_batch,
    load_results,
    mask_agreement,
    run_batch,
    save_results,
    split_half,
    summarize,
    syndrome_map,
)

METHODS = ("gradcam", "saliency")


def test_shard_parse() -> None:
    assert Shard.parse("1/3") == Shard(1, 3)
    assert [Shard(1, 3).owns(k) for k in range(4)] == [False, True, False, False]
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_sharded_resumable_run_equals_full_run(tiny, tmp_path) -> None:
    g = tiny.gallery
    full = run_batch(tiny.model, g, tmp_path / "full", methods=METHODS, chunk=5)
    assert (full.chunks_total, full.chunks_done_now, full.rows_done_now) == (3, 3, 12)
    a = run_batch(tiny.model, g, tmp_path / "sh", methods=METHODS, chunk=5, shard=Shard(0, 2))
    assert a.chunks_done_now == 2 and not load_batch(tmp_path / "sh", g).complete
    b = run_batch(tiny.model, g, tmp_path / "sh", methods=METHODS, chunk=5, shard=Shard(1, 2))
    assert b.chunks_done_now == 1
    again = run_batch(tiny.model, g, tmp_path / "sh", methods=METHODS, chunk=5)
    assert again.chunks_done_now == 0 and again.chunks_skipped == 3
    x, y = load_batch(tmp_path / "full", g), load_batch(tmp_path / "sh", g)
    assert x.complete and y.complete
    for m in METHODS:
        np.testing.assert_array_equal(x.maps[m], y.maps[m])
    with pytest.raises(BatchStoreError, match="different batch run"):
        run_batch(tiny.model, g, tmp_path / "sh", methods=("gradcam",), chunk=5)


def test_interrupted_run_keeps_finished_chunks(tiny, tmp_path) -> None:
    calls = []

    def stop_after_first(done: int, total: int) -> None:
        calls.append(done)
        if done > 4:  # inside the second chunk, after the first was written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(
            tiny.model, tiny.gallery, tmp_path, methods=METHODS, chunk=4, progress=stop_after_first
        )
    assert sorted(p.name for p in tmp_path.glob("chunk_*.npz")) == ["chunk_000000.npz"]
    assert not list(tmp_path.glob(".*tmp"))
    rest = run_batch(tiny.model, tiny.gallery, tmp_path, methods=METHODS, chunk=4)
    assert rest.chunks_done_now == 2 and rest.chunks_skipped == 1


def test_auroc_and_mask_agreement_hand_values() -> None:
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0])) == pytest.approx(0.75)  # tie
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    values = np.zeros((4, 4))
    values[0, 0] = 3.0
    values[3, 3] = 1.0
    values[2, 2] = -5.0  # negative: no mass
    ag = mask_agreement(values, mask)
    assert ag.mass_inside == pytest.approx(0.75)
    assert ag.area_fraction == pytest.approx(0.25)
    assert ag.enrichment == pytest.approx(3.0)
    # inside: 3, 0, 0, 0; outside: 1, -5, and ten zeros
    assert 0.5 < ag.auroc < 1.0
    with pytest.raises(ValueError, match="empty"):
        mask_agreement(values, np.zeros((4, 4), bool))


def test_split_half_and_syndrome_map() -> None:
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(7, 7))
    maps = signal[None] + 0.05 * rng.normal(size=(12, 7, 7))
    subjects = [f"s{i // 2}" for i in range(12)]
    before = maps.copy()
    assert split_half(maps, subjects) > 0.95
    noise = rng.normal(size=(12, 7, 7))
    assert abs(split_half(noise, subjects)) < 0.6
    assert np.isnan(split_half(maps[:6], subjects[:6]))  # 3 subjects
    sm = syndrome_map(maps, subjects, "X", "gradcam")
    np.testing.assert_array_equal(maps, before)
    np.testing.assert_allclose(sm.mean, maps.mean(0), atol=1e-6)
    np.testing.assert_allclose(sm.std, maps.std(0), atol=1e-6)
    assert (sm.n_images, sm.n_patients) == (12, 6)
    assert sm.stability_sb == pytest.approx(2 * sm.stability / (1 + sm.stability))


def test_summarize_and_roundtrip(tiny, tmp_path) -> None:
    g = tiny.gallery
    run_batch(tiny.model, g, tmp_path / "run", methods=METHODS, target="logit", chunk=6)
    batch = load_batch(tmp_path / "run", g)
    res = summarize(batch, g, masks=g.extras["gt_mask"], reference_faces=g.photos[8:])
    assert res.syndromes == ("S:1", "S:2")  # S:3 has no logit
    assert res.maps[("S:1", "gradcam")].n_patients == 4
    assert set(res.masks) == {"S:1", "S:2"}
    path = save_results(res, tmp_path / "r.npz")
    back = load_results(path)
    assert back.syndromes == res.syndromes and back.methods == res.methods
    for key, sm in res.maps.items():
        np.testing.assert_allclose(back.maps[key].mean, sm.mean, rtol=2e-3, atol=1e-6)
    np.testing.assert_array_equal(back.masks["S:2"], res.masks["S:2"])
    # 4 and 2 patients, 4 reference faces: fewer than MIN_COMPOSITE_SUBJECTS, so no composite
    assert res.composites == {} and back.composites == {} and res.reference_composite is None
    assert back.composite_difference("S:1") is None and back.contrast("S:1", "gradcam") is None
    assert res.localisation is None and back.localisation is None
    # Gallery maps (mostly training images) are never scored against the region.
    assert not any("auroc" in row for row in res.table())


def test_localisation_roundtrip(tiny, tmp_path) -> None:
    from gmx.aggregate.localisation import localisation

    g = tiny.gallery
    run_batch(tiny.model, g, tmp_path / "run", methods=METHODS, target="logit", chunk=6)
    batch = load_batch(tmp_path / "run", g)
    rng = np.random.default_rng(0)
    regions = {"A": np.eye(8, dtype=bool), "B": ~np.eye(8, dtype=bool)}
    maps = {s: rng.normal(size=(4, 8, 8)).astype(np.float32) for s in regions}
    loc = localisation(maps, {s: np.arange(4) for s in regions}, regions, method="m", n_boot=20)
    res = summarize(batch, g, localisation=loc)
    back = load_results(save_results(res, tmp_path / "r.npz"))
    assert back.localisation is not None
    assert json.dumps(back.localisation.rows()) == json.dumps(loc.rows())
    assert json.dumps([s.__dict__ for s in back.localisation.summaries]) == json.dumps(
        [s.__dict__ for s in loc.summaries]
    )


def test_cli_run_and_summarize(tiny, tmp_path, monkeypatch, capsys) -> None:
    from gmx.aggregate import cli

    monkeypatch.setattr(cli, "_models_and_gallery", lambda args: ([tiny.model], tiny.gallery))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.add_parser(sub)
    out = tmp_path / "run"
    for shard in ("0/2", "1/2"):
        args = parser.parse_args(
            [
                "batch",
                "run",
                "--out",
                str(out),
                "--methods",
                "hirescam",
                "--chunk",
                "4",
                "--shard",
                shard,
            ]
        )
        assert args.func(args) == 0
    args = parser.parse_args(
        ["batch", "summarize", "--out", str(out), "--results", str(tmp_path / "r.npz")]
    )
    assert args.func(args) == 0
    table = json.loads(capsys.readouterr().out)
    assert {r["syndrome"] for r in table} == {"S:1", "S:2"}
    assert all(r["method"] == "hirescam" for r in table)


# --- damaged chunks, atomic manifest, validation before the folder (issue 10, item 16) -------------
def _truncate(path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _flip_byte(path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_chunk_is_recomputed_on_resume(tiny, tmp_path, damage) -> None:
    g = tiny.gallery
    full = tmp_path / "full"
    run_batch(tiny.model, g, full, methods=METHODS, chunk=5)
    reference = load_batch(full, g)
    out = tmp_path / "run"
    run_batch(tiny.model, g, out, methods=METHODS, chunk=5)
    chunk = out / "chunk_000001.npz"
    if damage == "truncate":
        _truncate(chunk)
    else:  # one byte in the middle of the compressed maps
        _flip_byte(chunk, len(chunk.read_bytes()) // 2)
    again = run_batch(tiny.model, g, out, methods=METHODS, chunk=5)
    assert (again.chunks_done_now, again.chunks_skipped) == (1, 2)
    back = load_batch(out, g)
    assert back.complete
    for m in METHODS:
        np.testing.assert_array_equal(back.maps[m], reference.maps[m])


def test_damaged_chunk_is_named_by_load_and_summarize(tiny, tmp_path, monkeypatch, caplog) -> None:
    from gmx.aggregate import cli
    from gmx.cli import _run

    out = tmp_path / "run"
    run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5)
    _truncate(out / "chunk_000002.npz")
    with pytest.raises(BatchStoreError, match=r"chunk_000002\.npz.*gmx batch run"):
        load_batch(out, tiny.gallery)
    monkeypatch.setattr(cli, "_models_and_gallery", lambda args: ([tiny.model], tiny.gallery))
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["batch", "summarize", "--out", str(out), "--results", str(tmp_path / "r.npz")]
    )
    assert _run(args) == 2  # a message, not a BadZipFile traceback
    assert "chunk_000002.npz" in caplog.text
    assert not (tmp_path / "r.npz").exists()


def test_chunk_without_checksum_is_checked_by_loading(tiny, tmp_path) -> None:
    """Chunks of an older gmx (no .sha256) still count when whole, and are redone when not."""
    out = tmp_path / "run"
    run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5)
    for f in out.glob("*.sha256"):
        f.unlink()
    _truncate(out / "chunk_000000.npz")
    again = run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5)
    assert (again.chunks_done_now, again.chunks_skipped) == (1, 2)
    assert load_batch(out, tiny.gallery).complete


def test_failed_manifest_write_leaves_no_manifest(tiny, tmp_path, monkeypatch) -> None:
    from gmx.aggregate import store

    real_dumps = json.dumps

    def failing_dumps(obj, *args, **kwargs):
        if kwargs.get("indent") is not None:  # the manifest's text, not the normalisation
            raise OSError("disk full")
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(store.json, "dumps", failing_dumps)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5)
    monkeypatch.setattr(store.json, "dumps", real_dumps)
    assert not (out / "manifest.json").exists()
    assert not list(out.glob(".*tmp"))
    assert run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5).chunks_done_now == 3


def test_damaged_manifest_is_a_clear_error(tiny, tmp_path) -> None:
    out = tmp_path / "run"
    run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5)
    for text in ('{"keys": [', '{"keys": ["im0"]}', "[]"):
        (out / "manifest.json").write_text(text)
        with pytest.raises(BatchStoreError, match=r"manifest\.json is damaged"):
            run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5)
        with pytest.raises(BatchStoreError, match=r"manifest\.json is damaged"):
            load_batch(out, tiny.gallery)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"methods": ("gradcm",)}, "unknown method 'gradcm'"),
        ({"methods": ("gradcam", "gradcam")}, "listed twice"),
        ({"params": {"saliency": {"nonsense": 1}}}, "nonsense"),
        ({"params": {"occlusion": {}}}, "not run"),
        ({"variants": [9]}, "variants"),
        ({"indices": [99]}, "indices"),
        ({"target": "logits"}, "target"),
    ],
)
def test_bad_arguments_leave_no_folder_and_the_corrected_command_runs(
    tiny, tmp_path, kwargs, match
) -> None:
    out = tmp_path / "run"
    args = {"methods": METHODS, "chunk": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_batch(tiny.model, tiny.gallery, out, **args)
    assert not out.exists()
    assert run_batch(tiny.model, tiny.gallery, out, methods=METHODS, chunk=5).chunks_done_now == 3
