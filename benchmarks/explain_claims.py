"""Measure the claims docs/explain.md makes about its methods, on the committed demo.

For one frequent-test image (default 100024, SYN:0001) and its top syndromes, with all four TTA
variants of the demo model, fp32:

* occlusion (10x10 black, stride 5) of the fixed nearest image vs the re-ranked syndrome score: the
  share of windows whose nearest image of the syndrome changes, the mean drop of each, their maps'
  Pearson r, and the time of each;
* Saliency: the variant average vs the saliency of the mean score (sum ratio, Pearson r);
* FullGrad: the full-gradient sum (d/ds f(s x, s b) at s = 1, all biases) vs f(x); per-layer vs
  per-channel rescaling (Pearson r);
* completeness of DeepLIFT (hybrid) and Integrated Gradients (32 Gauss-Legendre points);
* Guided Backprop and Deconvolution, prelu="decomposed" vs "as_relu" (Pearson r, negative mass).

Usage::

    python benchmarks/explain_claims.py [--image 100024] [--top 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _bias_scaled(model: nn.Module, s: float):
    """``x -> model(x)`` with every explicit and BatchNorm-implicit bias multiplied by ``s``."""
    state = {
        name: t * s if name.rsplit(".", 1)[-1] in ("bias", "running_mean") else t
        for name, t in (*model.named_parameters(), *model.named_buffers())
    }
    return lambda x: torch.func.functional_call(model, state, (x,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="100024")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from gmx.config import DEMO_DIR, DEMO_MODEL
    from gmx.encode import Ensemble
    from gmx.encode.load import load_model
    from gmx.explain import SimilarityTarget, agreement, explain, variant_input
    from gmx.explain.occlusion import mirror_boxes, occluded_embeddings, window_boxes
    from gmx.explain.prepared import engine_model
    from gmx.gallery import load_gallery, rank
    from gmx.synth.dataset import load_demo_data

    loaded = load_model(DEMO_MODEL, device="cpu")
    ensemble = Ensemble([loaded])
    variants = ensemble.variants
    gallery = load_gallery(DEMO_DIR / "gallery.sqlite", expected_fingerprint=ensemble.fingerprint)
    data = load_demo_data(DEMO_DIR)
    face = data.images[list(data.image_ids).index(args.image)]
    query = ensemble.embed(face[None])[0]
    ranking = rank(query, gallery)
    backbone = loaded.model.backbone
    emb = np.asarray(gallery.embeddings)
    syn_of = np.array([im.syndrome_id for im in gallery.images])
    print(f"image {args.image} ({data.labels[list(data.image_ids).index(args.image)]}), "
          f"{len(variants)} variants, torch threads {args.threads}")  # fmt: skip

    occ = {"window": 10, "stride": 5, "precision": "fp32"}
    boxes = window_boxes((112, 112), (10, 10), (5, 5))
    for m in ranking.syndromes[: args.top]:
        idx = np.flatnonzero(syn_of == m.syndrome_id)
        target = SimilarityTarget(emb[m.image_index], m.name, syndrome_embeddings=emb[idx])
        t0 = time.perf_counter()
        fixed = explain(loaded, face, target, variants, methods=["occlusion"],
                        params={"occlusion": occ})["occlusion"].values  # fmt: skip
        t1 = time.perf_counter()
        rer = explain(loaded, face, target, variants, methods=["occlusion"],
                      params={"occlusion": {**occ, "rerank": True}})["occlusion"].values  # fmt: skip
        t2 = time.perf_counter()
        # Which image is nearest under each window (all variants, each window in face coordinates).
        em = engine_model(backbone)
        with torch.inference_mode():
            mean = 0.0
            for vi, v in enumerate(variants):
                x = variant_input(face, v)
                fn = occluded_embeddings(
                    em.backbone, x, mirror_boxes(boxes, 112) if v.flip else boxes, -1.0
                )
                e = torch.cat([fn(-1, 0)] + [fn(s, min(s + 64, len(boxes)))
                                             for s in range(0, len(boxes), 64)])  # fmt: skip
                g = torch.from_numpy(emb[idx, vi].copy())
                mean = mean + F.cosine_similarity(e[:, None], g[None], dim=2) / len(variants)
        nearest = mean.argmax(1)
        changed = float((nearest[1:] != nearest[0]).double().mean())
        fixed_drop = float((mean[0, nearest[0]] - mean[1:, nearest[0]]).mean())
        rer_drop = float((mean[0].max() - mean[1:].max(1).values).mean())
        print(
            f"#{m.rank} {m.syndrome_id} ({len(idx)} images, score {1 - m.distance:.4f}): "
            f"nearest image changes in {changed:.1%} of {len(boxes)} windows; mean drop over windows "
            f"fixed {fixed_drop:.4f} vs re-ranked {rer_drop:.4f} (fixed/re-ranked "
            f"{fixed_drop / rer_drop:.3f}); mean map value fixed {fixed.mean():.4f} vs re-ranked "
            f"{rer.mean():.4f}; maps r {_pearson(fixed, rer):.3f}; "
            f"time fixed {t1 - t0:.1f} s, re-ranked {t2 - t1:.1f} s"
        )

    top = ranking.syndromes[0]
    target = SimilarityTarget(emb[top.image_index], top.name)
    maps = explain(
        loaded, face, target, variants,
        methods=["saliency", "deeplift", "integrated_gradients", "fullgrad", "guided_backprop",
                 "deconvolution"],
        params={"integrated_gradients": {"steps": 32, "precision": "fp32"}},
    )  # fmt: skip

    # The score as a differentiable function of the (colour) face tensor: mean over variants.
    def mean_score(model, x: torch.Tensor) -> torch.Tensor:
        luma = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
        total = 0.0
        for vi, v in enumerate(variants):
            xv = (x * luma).sum(1, keepdim=True).expand(-1, 3, -1, -1) if v.grey else x
            xv = torch.flip(xv, dims=[-1]) if v.flip else xv
            total = total + target.bind(vi)(model(xv))
        return total / len(variants)

    x = variant_input(face, variants[0]).requires_grad_(True)
    (g,) = torch.autograd.grad(mean_score(backbone, x).sum(), x)
    sal_mean = g.abs().amax(1)[0].numpy()
    sal = maps["saliency"].values
    print(f"Saliency: variant average / saliency of the mean score: sum ratio "
          f"{sal.sum() / sal_mean.sum():.3f}, r {_pearson(sal, sal_mean):.3f}")  # fmt: skip

    with torch.no_grad():
        x0 = variant_input(face, variants[0])
        f = float(mean_score(backbone, x0))
        fp = float(mean_score(_bias_scaled(backbone, 1.001), 1.001 * x0))
        fm = float(mean_score(_bias_scaled(backbone, 0.999), 0.999 * x0))
        deltas = []
        for vi, v in enumerate(variants):
            xv = variant_input(face, v)
            fn = target.bind(vi)
            deltas.append(float(fn(backbone(xv)) - fn(backbone(torch.full_like(xv, -1.0)))))
    delta = float(np.mean(deltas))
    print(f"FullGrad: full-gradient sum (all biases) {(fp - fm) / 0.002:.2e} vs f(x) {f:.4f}")
    lay = maps["fullgrad"].values
    ch = explain(loaded, face, target, variants, methods=["fullgrad"],
                 params={"fullgrad": {"rescale": "channel"}})["fullgrad"].values  # fmt: skip
    print(
        f"FullGrad per layer vs per channel: r {_pearson(lay, ch):.4f}, top-10 % pixel IoU {agreement(lay, ch).top_iou:.3f}"
    )
    for name in ("deeplift", "integrated_gradients"):
        s = float(maps[name].raw.sum(dtype=np.float64))
        print(f"{name}: sum {s:.6f} vs f(x) - f(black) {delta:.6f}: "
              f"relative error {abs(s - delta) / abs(delta):.2e}")  # fmt: skip
    for name in ("guided_backprop", "deconvolution"):
        dec = maps[name].values
        rel = explain(loaded, face, target, variants, methods=[name],
                      params={name: {"prelu": "as_relu"}})[name].values  # fmt: skip
        neg = lambda v: float(-v[v < 0].sum() / np.abs(v).sum())  # noqa: E731
        print(f"{name}: decomposed vs as_relu r {_pearson(dec, rel):.3f}; negative mass "
              f"{neg(dec):.0%} vs {neg(rel):.0%}; r with Saliency-signed gradient "
              f"{_pearson(dec, g.sum(1)[0].numpy()):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
