"""The scorecard's shards elsewhere: as Ray tasks (local Ray instance) and as separate processes
(a Slurm job array simulated with subprocesses); each must equal the one-process run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gmx.metrics.backends import run_shards
from gmx.metrics.scorecard import (
    ScorecardSettings,
    load_rows,
    run_scorecard,
    run_scorecard_sharded,
    summarize_scorecard,
)

ROOT = Path(__file__).resolve().parents[2]


def _same_rows(a: Path, b: Path) -> None:
    ma, xa, fa = load_rows(a)
    mb, xb, fb = load_rows(b)
    assert ma == mb and fa.all() and fb.all()
    assert set(xa) == set(xb)
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)


def test_run_shards_local_order_and_errors() -> None:
    seen = []
    got = run_shards(lambda s: (s.index, s.count), 3, on_done=lambda i, r: seen.append(i))
    assert got == [(0, 3), (1, 3), (2, 3)] and seen == [0, 1, 2]
    with pytest.raises(ValueError, match="backend"):
        run_shards(lambda s: s, 2, "dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_shards"):
        run_shards(lambda s: s, 0)


@pytest.mark.slow
def test_ray_backend_equals_the_local_run(tiny, tmp_path) -> None:
    pytest.importorskip("ray")
    masks = np.zeros((3, 112, 112), bool)
    masks[:, 40:70, 30:80] = True
    kw = dict(
        faces=tiny.faces, labels=np.array(tiny.labels), masks=masks, image_ids=["a", "b", "c"],
        regions={"S:1": masks[0], "S:2": np.roll(masks[0], 30, axis=0)}, chunk=1,
        settings=ScorecardSettings(
            methods=("saliency", "random"), steps=2, mprt_images=1, n_boot=20,
            road_percentiles=(50,), infidelity_samples=2,
        ),
    )  # fmt: skip
    local = run_scorecard(tiny.model, tiny.gallery, tmp_path / "local", **kw)
    shards = []
    run = run_scorecard_sharded(
        tiny.model, tiny.gallery, tmp_path / "ray", n_shards=2, backend="ray", num_cpus=2,
        progress=lambda done, total: shards.append((done, total)), **kw,
    )  # fmt: skip
    assert (run.chunks_total, run.chunks_done_now, run.rows_done_now) == (3, 3, 3)
    assert local.chunks_done_now == 3 and shards[-1] == (2, 2)
    _same_rows(tmp_path / "local", tmp_path / "ray")
    assert summarize_scorecard(tmp_path / "ray").to_json() == (
        summarize_scorecard(tmp_path / "local").to_json()
    )


@pytest.mark.slow
def test_slurm_style_array_of_processes_equals_one_run(tmp_path) -> None:
    """Two `gmx scorecard run --shard i/2` processes on one folder, then `summarize`."""
    args = [
        "--images", "2", "--chunk", "1", "--methods", "edges", "random", "--steps", "2",
        "--mprt-images", "0", "--boot", "20",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GMX_THREADS": "1"}
    cmd = [sys.executable, "-m", "gmx.cli", "scorecard", "run"]
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(tmp_path / "array"), "--shard", f"{i}/2", *args],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]  # the job array: both shards at once, on the same folder
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
    from gmx.cli import main

    assert main(["scorecard", "run", "--out", str(tmp_path / "one"), *args]) == 0
    _same_rows(tmp_path / "array", tmp_path / "one")
    out = tmp_path / "array.json"
    assert (
        main(["scorecard", "summarize", "--out", str(tmp_path / "array"), "--json", str(out)]) == 0
    )
    assert (
        summarize_scorecard(tmp_path / "one").to_json()
        == summarize_scorecard(tmp_path / "array").to_json()
    )
