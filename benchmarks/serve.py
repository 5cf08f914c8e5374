"""Requests/s and latency of ``gmx serve``: micro-batched vs one request at a time (issue 14, speed).

One process loads the models once and serves them through two real uvicorn servers on loopback
ports (the same :class:`~gmx.pipeline.Diagnoser`): one with micro-batching and alignment overlapped
with encoding (``batching = true``, the default), one that answers one request at a time
(``batching = false``, as GestaltMatcher-Arc's service does). For each number of concurrent clients
(1, 4, 16; closed loop: each client sends its next ``POST /predict`` when the previous answer has
arrived) it runs the one-at-a-time server, then the batched one, back to back, and prints requests/s,
p50/p95 latency, and p95 against a fair queue's latency at the same throughput (Little's law:
``clients / throughput``; a ratio near 1 means no request waited much longer than its turn). Every
batched answer is checked against the one-at-a-time answer for the same photo (service fields equal).

Set-ups:

* ``demo``: the embedded demo (its model, 4 TTA variants, 1150-image gallery), its 16 example
  photos (small synthetic faces);
* ``ensemble``: GestaltMatcher-Arc's shape, random-init iResNet-50 + 2 x iResNet-100 with flip + grey
  (12 variants), a 1,000-image random gallery (``benchmarks/pages.py``'s ``build_ensemble``), the
  16 example photos upscaled to 1024x1024 JPEGs (clinical photo size).

The HTTP clients run in threads of the same process (they only wait on sockets). Torch threads:
``GMX_THREADS`` or the automatic policy (one per two cores). Usage::

    python benchmarks/serve.py [--setups demo ensemble] [--requests 16] [--clients 1 4 16]
                               [--max-batch 16] [--json out.json]

``--requests N``: requests per client count (at least one per client; 1 client sends N // 4).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CLIENTS = (1, 4, 16)
MODES = ("one-at-a-time", "batched")


@contextmanager
def serving(app: object) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port; yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def photos_for(setup: str) -> list[bytes]:
    """The 16 demo example photos (upscaled to 1024 px JPEGs for the ensemble)."""
    from PIL import Image

    from gmx.config import DEMO_DIR

    files = sorted((DEMO_DIR / "examples").glob("*.jpg"))
    if setup == "demo":
        return [p.read_bytes() for p in files]
    out = []
    for p in files:
        img = Image.open(p).convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=92)
        out.append(buf.getvalue())
    return out


def closed_loop(url: str, bodies: Sequence[dict], clients: int, total: int) -> dict[str, object]:
    """``clients`` threads, ``total`` requests in all; latencies, throughput and the answers."""
    import httpx

    per_client = max(1, total // clients)
    latencies: list[float] = []
    answers: dict[int, dict] = {}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            start.wait()
            for i in range(per_client):
                k = (c + i * clients) % len(bodies)
                t0 = time.perf_counter()
                r = http.post("/predict", json=bodies[k])
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    latencies.append(dt)
                    answers.setdefault(k, r.json())

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    n = len(latencies)
    throughput = n / wall if wall > 0 else 0.0
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = float(np.percentile(latencies, 95)) if latencies else float("nan")
    fair = clients / throughput if throughput else float("nan")
    return {
        "clients": clients,
        "requests": n,
        "errors": errors,
        "wall_s": wall,
        "rps": throughput,
        "p50_s": p50,
        "p95_s": p95,
        "fair_latency_s": fair,
        "p95_over_fair": p95 / fair,
        "answers": answers,
    }


def run_setup(
    name: str, total: int, clients_levels: Sequence[int] = CLIENTS, max_batch: int | None = None
) -> dict[str, object]:
    """Both servers of one set-up, every client count."""
    from gmx.config import GmxConfig
    from gmx.device import set_threads
    from gmx.pipeline import Diagnoser
    from gmx.serve import ServeSettings, create_app

    threads = set_threads(int(os.environ.get("GMX_THREADS", "0") or 0))
    with tempfile.TemporaryDirectory() as tmp:
        if name == "demo":
            cfg = GmxConfig()
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from pages import GALLERY_SIZE, build_ensemble

            cfg, _ = build_ensemble(Path(tmp), GALLERY_SIZE)
        bodies = [{"img": base64.b64encode(p).decode()} for p in photos_for(name)]
        rows = []
        with Diagnoser.from_config(cfg) as diagnoser:
            apps = {
                mode: create_app(
                    cfg,
                    settings=ServeSettings(
                        batching=mode == "batched", timeout_s=3600, max_batch=max_batch
                    ),
                    diagnoser=diagnoser,
                )
                for mode in MODES
            }
            with serving(apps[MODES[0]]) as url0, serving(apps[MODES[1]]) as url1:
                urls = dict(zip(MODES, (url0, url1), strict=True))
                for mode in MODES:  # warm-up: first passes allocate
                    closed_loop(urls[mode], bodies[:1], 1, 1)
                for clients in clients_levels:
                    n = total // 4 if clients == 1 else total
                    for mode in MODES:
                        row = closed_loop(urls[mode], bodies, clients, max(n, clients))
                        row["mode"] = mode
                        rows.append(row)
                        print(_line(name, row), file=sys.stderr, flush=True)
                stats = apps["batched"].state.service.status()["gmx"]["batching"]
                max_batch = apps["batched"].state.service.max_batch
        variants = len(diagnoser.ensemble.variants)
        models = [m.card.architecture for m in diagnoser.models]
    mismatches = _compare(rows)
    for r in rows:
        r.pop("answers")
    return {
        "setup": name,
        "models": models,
        "variants": variants,
        "torch_threads": threads,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": rows,
        "batching": stats,
        "max_batch": max_batch,
        "clients": list(clients_levels),
        "answer_mismatches": mismatches,
    }


def _compare(rows: Sequence[dict]) -> int:
    """Photos whose batched answer differs from the one-at-a-time answer (service fields)."""
    keys = ("suggested_syndromes_list", "suggested_genes_list", "suggested_patients_list")
    serial: dict[int, dict] = {}
    for r in rows:
        if r["mode"] == "one-at-a-time":
            serial.update(r["answers"])
    bad = 0
    for r in rows:
        if r["mode"] != "batched":
            continue
        for k, a in r["answers"].items():
            if k in serial and any(a[f] != serial[k][f] for f in keys):
                bad += 1
    return bad


def _line(setup: str, r: dict) -> str:
    return (
        f"{setup:8s} {r['mode']:13s} {r['clients']:2d} clients: {r['rps']:6.2f} req/s, "
        f"p50 {r['p50_s'] * 1000:7.0f} ms, p95 {r['p95_s'] * 1000:7.0f} ms, "
        f"p95/fair {r['p95_over_fair']:.2f} ({r['requests']} requests"
        + (f", {len(r['errors'])} errors" if r["errors"] else "")
        + ")"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=["demo", "ensemble"])
    parser.add_argument("--requests", type=int, default=32, help="requests per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="faces per forward pass (default: the service's)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = [run_setup(s, args.requests, args.clients, args.max_batch) for s in args.setups]
    for res in results:
        print(
            f"{res['setup']}: {' + '.join(res['models'])}, {res['variants']} variants, "
            f"max batch {res['max_batch']}, torch threads {res['torch_threads']}, {res['cpus']} CPUs, "
            "load average "
            f"{', '.join(f'{x:.1f}' for x in res['load_average'])}"
        )
        print("| clients | mode | req/s | p50 ms | p95 ms | p95 / fair queue | requests |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        by = {(r["clients"], r["mode"]): r for r in res["rows"]}
        for clients in res["clients"]:
            for mode in MODES:
                r = by[(clients, mode)]
                print(
                    f"| {clients} | {mode} | {r['rps']:.2f} | {r['p50_s'] * 1000:.0f} | "
                    f"{r['p95_s'] * 1000:.0f} | {r['p95_over_fair']:.2f} | {r['requests']} |"
                )
            ratio = by[(clients, "batched")]["rps"] / by[(clients, "one-at-a-time")]["rps"]
            print(f"|  | batched / one-at-a-time | **{ratio:.2f}x** |  |  |  |  |")
        print(
            f"batches per model: {res['batching']['per_model']}; batched answers differing from "
            f"one-at-a-time answers: {res['answer_mismatches']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
