"""Add the split-averaged method agreement to a scorecard JSON made on the demo (the committed
``models/demo/scorecard.json``) without recomputing the scorecard.

The faces are selected again exactly as ``gmx scorecard`` did (``held_out_rows`` with the file's
``n_images`` and seed); the manifest configuration rebuilt from them must hash to the file's
settings fingerprint, so the agreement is measured on the very faces of the scorecard, else the
script refuses. Only the maps are recomputed (every method of the file, default parameters), then
:func:`gmx.explain.compare.split_agreement` (Spearman and top-10 % IoU per face, averaged)
goes into the file's ``extra.agreement``; nothing else in the file changes.

    python benchmarks/scorecard_agreement.py [--scorecard models/demo/scorecard.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from gmx._io import atomic_write_text
from gmx.config import DEMO_DIR, DEMO_GALLERY, DEMO_MODEL
from gmx.encode import load_model
from gmx.explain.compare import split_agreement
from gmx.gallery import load_gallery
from gmx.metrics.scorecard import (
    ScorecardSettings,
    fingerprint,
    held_out_rows,
    load_scorecard,
    manifest_config,
    scorecard_maps,
)
from gmx.synth import load_demo_data

log = logging.getLogger("gmx")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scorecard", type=Path, default=DEMO_DIR / "scorecard.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    card = load_scorecard(args.scorecard)
    st = {k: tuple(v) if isinstance(v, list) else v for k, v in card.settings.items()}
    settings = ScorecardSettings(**st)
    model = load_model(DEMO_MODEL, device="cpu")
    gallery = load_gallery(DEMO_GALLERY)
    data = load_demo_data(DEMO_DIR)
    rows = held_out_rows(data.labels, data.splits, data.image_ids, gallery,
                         n_images=card.n_images, seed=settings.seed)  # fmt: skip
    ids = [str(x) for x in data.image_ids[rows]]
    if fingerprint(manifest_config(model, gallery, ids, settings)) != card.fingerprint:
        raise SystemExit("these are not the scorecard's faces/settings (fingerprint differs)")
    start = time.perf_counter()
    maps = scorecard_maps(model, gallery, data.images[rows], data.labels[rows],
                          card.methods, settings.variants)  # fmt: skip
    agreement = split_agreement(maps)
    log.info("maps and agreement of %d faces in %.1f s", len(rows), time.perf_counter() - start)
    data_out = json.loads(args.scorecard.read_text(encoding="utf-8"))
    data_out.setdefault("extra", {})["agreement"] = agreement.to_json()
    atomic_write_text(args.scorecard, json.dumps(data_out, indent=1, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
