"""Paired similarity maps for the 10 nearest gallery patients: exact decomposition vs gradients.

Set-up (issue 4, speed section): one iResNet-50 with random weights (timing does not depend on them;
512x7x7 maps, 512-d embeddings), a gallery of noisy copies of a real face whose feature maps were
precomputed at build time (float16 in ``Gallery.extras``), and one query face. Measured, with the
model loaded and the folded heads built:

* ``forward``: the query's forward pass (maps + embeddings of every variant);
* ``exact``: after that forward pass, the paired exact maps (query map, gallery map, 49x49
  correspondence, constants, 112x112 display maps) of the 10 nearest gallery images;
* ``gradient``: the same 10 pairs by signed HiResCAM through gmx.explain (one shared forward and 10
  backward passes on the query, one forward + backward per gallery photo), also given the query's
  forward pass.

Usage::

    python benchmarks/similarity.py [--runs 15] [--grad-runs 5] [--tta] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

TARGET_S = 0.100


def _faces(n: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from skimage import data

    face = cv2.resize(data.astronaut()[34:177, 150:293], (112, 112), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    gallery = np.stack(
        [
            np.clip(
                np.roll(face, int(rng.integers(-6, 7)), axis=1).astype(np.int16)
                + rng.integers(-30, 31, face.shape),
                0,
                255,
            ).astype(np.uint8)
            for _ in range(n)
        ]
    )
    return face, gallery


def _median_s(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of the exact maps")
    parser.add_argument("--grad-runs", type=int, default=5, help="timed runs of the gradient maps")
    parser.add_argument("--gallery-size", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--tta", action="store_true", help="flip + grey TTA (4 variants)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from gmx.encode import Ensemble, GestaltModel, LoadedModel, default_card, iresnet50
    from gmx.gallery import GalleryImage, Syndrome, build_gallery, rank
    from gmx.similarity import PairExplainer, gallery_activations, with_activations

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LoadedModel(
        GestaltModel(iresnet50()).eval(),
        default_card(name="r50-random", architecture="iresnet50"),
        "random-iresnet50",
    )
    ensemble = Ensemble([model], flip=args.tta, grey=args.tta)
    face, photos = _faces(args.gallery_size)
    images = [GalleryImage(f"i{i}", f"s{i}", f"S{i % 5}") for i in range(len(photos))]
    syndromes = [Syndrome(f"S{k}", f"Syndrome {k}") for k in range(5)]
    gallery = build_gallery(
        "bench", "1", images, syndromes, ensemble.embed, photos, ensemble.variants,
        ensemble.fingerprint, photos_visible=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    gallery = with_activations(gallery, gallery_activations(ensemble, gallery))
    build_s = time.perf_counter() - t0
    explainer = PairExplainer(ensemble, gallery)
    assert explainer.store.fully_stored

    forward_s, _ = _median_s(lambda: explainer.query(face), max(3, args.runs // 3))
    query = explainer.query(face)
    nearest = [int(i) for i in rank(query.embeddings, gallery).image_order[: args.pairs]]

    def exact():
        return explainer.explain(face, nearest, method="exact", query=query)

    def gradient():
        return explainer.explain(face, nearest, method="hirescam", query=query)

    exact()  # warm-up
    gradient()
    exact_s, exact_all = _median_s(exact, args.runs)
    grad_s, grad_all = _median_s(gradient, args.grad_runs)
    pairs = exact()
    worst = max(
        abs(p.query_raw.sum() + p.query_constant - p.score)
        + abs(p.gallery_raw.sum() + p.gallery_constant - p.score)
        for p in pairs
    )

    v = len(ensemble.variants)
    print(
        f"similarity pair maps, iResNet-50 random init (512x7x7 maps), {v} variant(s), "
        f"{args.pairs} nearest of {len(gallery)} gallery images, torch threads {args.threads}"
    )
    print(
        f"  gallery activations at build time: {build_s:.2f} s ({build_s / len(gallery) * 1e3:.0f} ms/image)"
    )
    print(f"  query forward pass (median):       {forward_s * 1e3:7.1f} ms")
    print(
        f"  exact paired maps (median of {args.runs}): {exact_s * 1e3:7.1f} ms for {args.pairs} pairs "
        f"(min {min(exact_all) * 1e3:.1f}, max {max(exact_all) * 1e3:.1f}); target "
        f"{TARGET_S * 1e3:.0f} ms: {'met' if exact_s <= TARGET_S else 'MISSED'}"
    )
    print(
        f"  HiResCAM pair maps (median of {args.grad_runs}): {grad_s * 1e3:7.1f} ms for {args.pairs} "
        f"pairs (min {min(grad_all) * 1e3:.1f}, max {max(grad_all) * 1e3:.1f})"
    )
    print(f"  gradient / exact time ratio:       {grad_s / exact_s:7.1f}x")
    print(f"  completeness residual (max over pairs, both sides): {worst:.2e}")


if __name__ == "__main__":
    main()
