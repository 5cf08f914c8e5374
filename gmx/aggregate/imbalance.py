"""The class-imbalance study (thesis 6.3): do syndrome maps depend on how many patients a class had?

Model variants are trained with the demo recipe (:mod:`gmx.demo`, same architecture, seed, epochs) on
controlled subsets of the synthetic training split:

* ``capN``: every frequent syndrome capped at N training patients (all of its photos kept);
* ``drop3``: the three largest syndromes removed from training.

For every model, per-image maps of the frequent *test* images are computed against the classifier
logit of the image's own syndrome (a target every variant has, unlike the gallery similarity, which
depends on each model's gallery), averaged per syndrome, and compared (a) with the full model's mean
map (Pearson r) and (b) with the known causal region of the synthetic syndrome (AUROC of the map
against the ground-truth mask). One command per phase::

    python -m gmx.aggregate.imbalance train --device cuda --out OUT     # models (GPU: ~1 min each)
    python -m gmx.aggregate.imbalance analyse --models OUT --out docs   # maps, table, plot (CPU)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from gmx.synth.dataset import DemoData, load_demo_data

log = logging.getLogger(__name__)

#: Variants in the order they are trained (most informative first).
VARIANTS: tuple[str, ...] = ("cap10", "cap20", "drop3", "cap40")
METHODS: tuple[str, ...] = ("gradcam", "hirescam", "saliency")
EXCLUDED = "excluded"


def variant_data(data: DemoData, variant: str, seed: int = 0) -> DemoData:
    """The demo data with training rows outside the variant's subset marked ``excluded``."""
    train = data.splits == "train"
    labels = data.labels
    keep = train.copy()
    rng = np.random.default_rng(seed)
    if variant.startswith("cap"):
        cap = int(variant[3:])
        keep[:] = False
        for syn in np.unique(labels[train]):
            subjects = np.unique(data.subject_ids[train & (labels == syn)])
            chosen = rng.permutation(subjects)[:cap]
            keep |= train & np.isin(data.subject_ids, chosen)
    elif variant == "drop3":
        sizes = {
            s: len(np.unique(data.subject_ids[train & (labels == s)]))
            for s in np.unique(labels[train])
        }
        largest = sorted(sizes, key=sizes.get, reverse=True)[:3]
        keep &= ~np.isin(labels, largest)
    elif variant != "full":
        raise ValueError(f"unknown variant {variant!r}; known: full, capN, drop3")
    splits = np.where(train & ~keep, EXCLUDED, data.splits)
    return dataclasses.replace(data, splits=splits)


def train_variants(
    data_dir: Path, out: Path, device: str, epochs: int, variants: tuple[str, ...]
) -> None:
    """Train each variant with the demo recipe; writes ``OUT/<variant>.pt`` (+ card)."""
    from gmx.demo import train_demo_model
    from gmx.train import TrainConfig

    data = load_demo_data(data_dir)
    cfg = TrainConfig(layers=(2, 2, 2, 2), epochs=epochs, threads=8)
    out.mkdir(parents=True, exist_ok=True)
    for v in variants:
        vd = variant_data(data, v)
        n = int((vd.splits == "train").sum())
        _, m = train_demo_model(vd, cfg, out / f"{v}.pt", device=device)
        log.info(
            "%s: %d training images, classifier macro top-1 %.3f",
            v,
            n,
            m["classifier_macro_topk_test"][1],
        )


def _syndrome_means(
    model_path: Path, data: DemoData, methods: tuple[str, ...]
) -> dict[str, dict[str, np.ndarray]]:
    from gmx.aggregate.batch import batch_maps
    from gmx.aggregate.stats import to_template
    from gmx.aggregate.targets import RowTargets
    from gmx.encode import load_model

    model = load_model(model_path, device="cpu")
    classes = list(model.card.classes or ())
    test = data.select(data.splits == "test")
    idx = np.array([classes.index(c) if c in classes else -1 for c in test.labels])
    n = len(test)
    targets = RowTargets(
        class_index=idx.astype(np.int64),
        reference=np.zeros((n, 1, model.card.embedding_dim), np.float32),
        reference_index=np.full(n, -1, np.int64),
        valid=idx >= 0,
        descriptions=tuple(f"logit of {c}" for c in test.labels),
    )
    maps = batch_maps([model], test.images, targets, methods=list(methods))
    out: dict[str, dict[str, np.ndarray]] = {}
    for m in methods:
        out[m] = {}
        for syn in np.unique(test.labels):
            rows = (test.labels == syn) & (idx >= 0)
            if rows.any():
                out[m][str(syn)] = to_template(np.nanmean(maps[m][rows], axis=0))
    return out


def analyse(
    data_dir: Path, models_dir: Path, full_model: Path, out: Path, methods: tuple[str, ...]
) -> dict:
    """Maps of every variant vs the full model and the causal regions; writes table, JSON, plot."""
    from gmx.aggregate.stats import mask_agreement
    from gmx.explain.compare import pearson

    data = load_demo_data(data_dir)
    train = data.splits == "train"
    masks = {s: data.masks[(data.labels == s)].mean(0) > 0.5 for s in np.unique(data.labels)}
    full = _syndrome_means(full_model, data, methods)
    rows = []
    for v in ("full", *VARIANTS):
        path = full_model if v == "full" else models_dir / f"{v}.pt"
        if not path.is_file():
            log.warning("no model for %s at %s", v, path)
            continue
        vd = variant_data(data, v) if v != "full" else data
        means = full if v == "full" else _syndrome_means(path, data, methods)
        for m in methods:
            for syn, mean in means[m].items():
                n_pat = len(np.unique(vd.subject_ids[(vd.splits == "train") & (vd.labels == syn)]))
                rows.append({
                    "variant": v, "method": m, "syndrome": syn, "train_patients": n_pat,
                    "full_patients": len(np.unique(data.subject_ids[train & (data.labels == syn)])),
                    "r_vs_full": pearson(mean, full[m][syn]) if syn in full[m] else float("nan"),
                    "auroc_gt": mask_agreement(mean, masks[syn]).auroc if masks[syn].any() else float("nan"),
                })  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "imbalance.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    _plot(rows, methods, out / "imbalance.png")
    return {"rows": rows}


def _plot(rows: list[dict], methods: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gradcam": "#1f6f8b", "hirescam": "#e07b39", "saliency": "#6a994e"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in (
        (axes[0], "r_vs_full", "mean map vs full model's (Pearson r)"),
        (axes[1], "auroc_gt", "mean map vs causal region (AUROC)"),
    ):
        for m in methods:
            sel = [r for r in rows if r["method"] == m and r["variant"] != "full"]
            ax.scatter([r["train_patients"] for r in sel], [r[key] for r in sel], s=18,
                       alpha=0.75, color=colours.get(m), label=m)  # fmt: skip
        if key == "auroc_gt":
            for m in methods:
                ref = [r[key] for r in rows if r["method"] == m and r["variant"] == "full"]
                ax.axhline(float(np.nanmedian(ref)), color=colours.get(m), lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("training patients of the syndrome in the variant")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].text(0.01, 0.02, "dashed: full model (median)", transform=axes[1].transAxes, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``train`` (any device) and ``analyse`` (CPU)."""
    p = argparse.ArgumentParser(
        prog="python -m gmx.aggregate.imbalance", description=__doc__.splitlines()[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, default=Path("models/demo"))
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--device", default="cpu")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--variants", nargs="+", default=list(VARIANTS))
    a = sub.add_parser("analyse")
    a.add_argument("--data", type=Path, default=Path("models/demo"))
    a.add_argument("--models", type=Path, required=True)
    a.add_argument("--full", type=Path, default=Path("models/demo/gmx-demo-iresnet.pt"))
    a.add_argument("--out", type=Path, default=Path("docs"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "train":
        train_variants(args.data, args.out, args.device, args.epochs, tuple(args.variants))
    else:
        analyse(args.data, args.models, args.full, args.out, METHODS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
