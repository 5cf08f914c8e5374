"""Benchmark: facial regions on the demo's example photos (held-out test patients, issue 11 RQ3).

For each demo example photo (one held-out test patient per frequent syndrome A-J): the photo goes
through the real pipeline (align -> encode -> rank), the map of its own syndrome's score (the
re-ranked similarity, GestaltMatcher's answer, every gallery variant) is computed with
``--methods``, and summarised per region (:func:`gmx.regions.region_mass`); then the region
occlusion and the exact Shapley values of the ten regions (``2**10 = 1024`` masked faces, blur fill,
``--batch-size`` per forward pass) on the same score, timed. The syndrome's true regions are its
features' regions (:data:`gmx.regions.SYNTH_FEATURE_REGIONS`): is one of them the top-1 region?

    python benchmarks/regions.py [--images 10] [--start 0] [--threads 2] [--out models/demo/regions.json]

With ``--out``, the file is written after every face, and a rerun keeps the faces it already holds
(it skips their photos): a stopped run resumes. Each face records every region's share and density
for each method, the Shapley values and the region occlusion drops, so the file is also the demo's
per-syndrome region profiles (:func:`gmx.regions.load_region_profiles`, the Scorecard page).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmx.config import load_config
from gmx.explain import explain
from gmx.metrics.faithfulness import fill_image
from gmx.metrics.scorecard import syndrome_score_targets
from gmx.pipeline import Diagnoser
from gmx.regions import (
    REGION_PROFILES_VERSION,
    REGIONS,
    SYNTH_FEATURE_REGIONS,
    region_masks,
    region_mass,
    region_shapley,
    target_scorer,
)
from gmx.synth.syndromes import all_classes
from ui.examples import example_files

log = logging.getLogger("bench.regions")
METHODS = ("gradcam_signed", "saliency", "integrated_gradients")


def _true_regions(syndrome_id: str) -> set[str]:
    syn = next(s for s in all_classes() if s.syndrome_id == syndrome_id)
    return {r for k in syn.features for r in SYNTH_FEATURE_REGIONS[k]}


def _text(args: argparse.Namespace, variants: list, faces: list, model: str) -> str:
    return json.dumps({"regions_version": REGION_PROFILES_VERSION, "model_fingerprint": model,
                       "threads": args.threads, "batch_size": args.batch_size,
                       "variants": [v.label for v in variants], "regions": list(REGIONS),
                       "faces": faces}, indent=1) + "\n"  # fmt: skip


def _write(path: Path, args: argparse.Namespace, variants: list, faces: list, model: str) -> None:
    path.write_text(_text(args, variants, faces, model))


def _by_region(names: tuple[str, ...], values: np.ndarray) -> dict[str, float | None]:
    return {
        n: (round(float(v), 4) if np.isfinite(v) else None)
        for n, v in zip(names, values, strict=True)
    }


def _done(path: Path | None) -> list:
    """Faces an earlier run of ``--out`` finished (none without the file)."""
    if path is None or not path.exists():
        return []
    return list(json.loads(path.read_text()).get("faces", []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--start", type=int, default=0, help="skip this many example photos first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--no-shapley",
        action="store_true",
        help="region occlusion only (12 faces scored, not 1024); a later run with Shapley "
        "replaces these faces",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cfg = load_config({})
    out = _done(args.out)
    # A face counts as done when it has what this run computes (Shapley values, unless skipped).
    finished = {r["photo"] for r in out if args.no_shapley or r["shapley"].get("values")}
    with Diagnoser.from_config(cfg) as dg:
        gallery = dg.gallery
        variants = list(gallery.variants)
        models = [m.model for m in dg.models]
        by_letter = {s.name.split()[2]: sid for sid, s in gallery.syndromes.items() if
                     s.name.startswith("Synthetic syndrome ")}  # fmt: skip
        model = gallery.model_fingerprint
        for photo in example_files()[args.start : args.start + args.images]:
            if photo.name in finished:
                continue
            out = [r for r in out if r["photo"] != photo.name]  # replaced by this run's record
            sid = by_letter[photo.name.split("_")[1]]
            d = dg.diagnose(photo.read_bytes())
            face = d.face.image
            target = syndrome_score_targets(gallery, d.embeddings[None], [sid])[0]
            regions = region_masks(d.face.landmarks_template)
            truth = _true_regions(sid)
            rec = {"photo": photo.name, "syndrome": sid, "rank": d.ranking.syndrome(sid).rank,
                   "true_regions": sorted(truth), "methods": {}}  # fmt: skip
            maps = explain(models, face, target, variants, methods=args.methods)
            for m, amap in maps.items():
                rm = region_mass(amap.values, regions)
                order = rm.ranking("density")
                rec["methods"][m] = {
                    "top3_density": list(order[:3]),
                    "top1_mass": rm.ranking("mass")[0],
                    "true_top1": order[0] in truth,
                    "true_best_rank": min(order.index(r) + 1 for r in truth),
                    "share": _by_region(rm.names, rm.mass),
                    "density": _by_region(rm.names, rm.density),
                }
            evaluate = target_scorer(models, target, variants)
            t0 = time.perf_counter()
            rs = region_shapley(evaluate, face, regions, fill_image(face, "blur"),
                                shapley=not args.no_shapley, batch_size=args.batch_size)  # fmt: skip
            dt = time.perf_counter() - t0
            occlusion = {
                "occlusion_top1": regions.names[int(np.argmax(rs.occlusion))],
                "occlusion": _by_region(regions.names, rs.occlusion),
                "full": round(rs.full, 4),
                "empty": round(rs.empty, 4),
            }
            if rs.shapley is None:
                rec["shapley"] = {
                    "seconds": round(dt, 2),
                    "evaluations": rs.evaluations,
                    **occlusion,
                }
                log.info("%s %s: occlusion %.1f s; %s", photo.name, sid, dt,
                         {m: v["top3_density"] for m, v in rec["methods"].items()})  # fmt: skip
                out.append(rec)
                if args.out:
                    _write(args.out, args, variants, out, model)
                continue
            order = [regions.names[i] for i in np.argsort(-rs.shapley, kind="stable")]
            rec["shapley"] = {
                "seconds": round(dt, 2),
                "evaluations": rs.evaluations,
                "sum_minus_gap": float(rs.shapley.sum() - (rs.full - rs.empty)),
                "values": {
                    n: round(float(v), 4) for n, v in zip(regions.names, rs.shapley, strict=True)
                },
                "top3": order[:3],
                "true_top1": order[0] in truth,
                "true_best_rank": min(order.index(r) + 1 for r in truth),
                **occlusion,
            }
            log.info("%s %s: shapley %.1f s top3 %s (true %s); %s", photo.name, sid, dt,
                     order[:3], sorted(truth),
                     {m: v["top3_density"] for m, v in rec["methods"].items()})  # fmt: skip
            out.append(rec)
            if args.out:  # after every face: a long run keeps what it finished
                _write(args.out, args, variants, out, model)
    if not args.out:
        sys.stdout.write(_text(args, variants, out, model))


if __name__ == "__main__":
    main()
