"""The class-imbalance study (thesis 6.3): does a syndrome's map depend on how many patients it had?

Design (``docs/imbalance.md`` has the reasoning and the results):

* **Variants** of the demo model (:mod:`gmx.demo` recipe and architecture) trained on controlled
  subsets of the synthetic training split: ``full`` (everything), ``capN`` (every frequent syndrome
  capped at N training patients, all photos of a kept patient kept) and, optionally, ``drop3`` (the
  three largest syndromes removed).
* **Seeds.** Every variant is trained with several seeds; the seed sets the initialisation, the batch
  order and the augmentation (:class:`gmx.train.TrainConfig`) *and* which patients a cap keeps (a
  fresh draw per seed, so a result does not hinge on one lucky subset).
* **Within-variant control.** In a cap variant the syndromes with at most N patients keep their size;
  they went through the same retraining on less total data as the reduced ones. The effect of
  interest is the reduced classes' loss of agreement *minus* the unchanged classes' loss.
* **Run-to-run noise.** Agreement between two ``full`` models of different seeds.

Three phases, each a command; the map cache lets the analysis be re-run in seconds::

    python -m gmx.aggregate.imbalance train --out OUT --epochs 8 --seeds 0 1 2 3 4
    python -m gmx.aggregate.imbalance maps --models OUT --cache OUT/maps.npz
    python -m gmx.aggregate.imbalance analyse --cache OUT/maps.npz --out docs

Maps are computed per frequent *test* image against the classifier logit of the image's own syndrome
(a target every variant has) and averaged per syndrome at the maps' native resolution (``7x7`` for
the CAM family, ``112x112`` for Saliency). Agreement of two models' mean maps of a syndrome is their
Pearson r at that resolution; agreement with the synthetic causal region is the AUROC of the mean map
(upsampled bilinearly to ``112x112``) against the syndrome's mask.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gmx.synth.dataset import DemoData, load_demo_data
from gmx.train import TrainConfig

log = logging.getLogger(__name__)

#: Variants trained by default (``drop3`` is also known to :func:`variant_data`).
VARIANTS: tuple[str, ...] = ("full", "cap40", "cap20", "cap10")
SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
METHODS: tuple[str, ...] = ("gradcam", "hirescam", "saliency")
EXCLUDED = "excluded"
FULL = "full"
_MODEL_RE = re.compile(r"^(?P<variant>[a-z0-9]+)-s(?P<seed>\d+)\.pt$")


def variant_data(data: DemoData, variant: str, seed: int = 0) -> DemoData:
    """The demo data with training rows outside the variant's subset marked ``excluded``.

    ``capN`` keeps, per syndrome, N training patients drawn with ``seed`` (all of a syndrome's
    patients if it has at most N); ``drop3`` removes the three largest syndromes; ``full`` changes
    nothing. Rows outside the training split are never changed; ``data`` is not modified.
    """
    train = data.splits == "train"
    labels = data.labels
    keep = train.copy()
    rng = np.random.default_rng(seed)
    if re.fullmatch(r"cap\d+", variant):
        cap = int(variant[3:])
        keep[:] = False
        for syn in np.unique(labels[train]):
            subjects = np.unique(data.subject_ids[train & (labels == syn)])
            chosen = rng.permutation(subjects)[:cap]
            keep |= train & np.isin(data.subject_ids, chosen)
    elif variant == "drop3":
        sizes = train_patients(data)
        largest = sorted(sizes, key=lambda s: (-sizes[s], s))[:3]
        keep &= ~np.isin(labels, largest)
    elif variant != FULL:
        raise ValueError(f"unknown variant {variant!r}; known: full, capN, drop3")
    splits = np.where(train & ~keep, EXCLUDED, data.splits)
    return dataclasses.replace(data, splits=splits)


def train_patients(data: DemoData) -> dict[str, int]:
    """Distinct training patients per syndrome that has any."""
    train = data.splits == "train"
    return {
        str(s): len(np.unique(data.subject_ids[train & (data.labels == s)]))
        for s in np.unique(data.labels[train])
    }


@dataclass(frozen=True)
class Retained:
    """How much of the full training split a variant keeps.

    Attributes:
        patients, images: kept in the variant.
        patients_full, images_full: in the full training split.
        unchanged: syndromes whose training-patient count is the full one.
        reduced: syndromes with fewer (but some) training patients.
        dropped: syndromes with none left.
    """

    patients: int
    images: int
    patients_full: int
    images_full: int
    unchanged: tuple[str, ...]
    reduced: tuple[str, ...]
    dropped: tuple[str, ...]

    @property
    def image_fraction(self) -> float:
        return self.images / self.images_full

    @property
    def patient_fraction(self) -> float:
        return self.patients / self.patients_full


def retained(data: DemoData, variant: str, seed: int = 0) -> Retained:
    """What :func:`variant_data` keeps of the training split, and which syndromes it shrinks."""
    vd = variant_data(data, variant, seed)
    full, kept = train_patients(data), train_patients(vd)
    train, vtrain = data.splits == "train", vd.splits == "train"
    return Retained(
        patients=len(np.unique(vd.subject_ids[vtrain])),
        images=int(vtrain.sum()),
        patients_full=len(np.unique(data.subject_ids[train])),
        images_full=int(train.sum()),
        unchanged=tuple(s for s in full if kept.get(s, 0) == full[s]),
        reduced=tuple(s for s in full if 0 < kept.get(s, 0) < full[s]),
        dropped=tuple(s for s in full if kept.get(s, 0) == 0),
    )


def model_path(models_dir: Path, variant: str, seed: int) -> Path:
    """``MODELS/<variant>-s<seed>.pt``."""
    return Path(models_dir) / f"{variant}-s{seed}.pt"


# ----------------------------------------------------------------------------------------- train


def train_variants(
    data: DemoData | Path,
    out: Path,
    *,
    variants: Sequence[str] = VARIANTS,
    seeds: Sequence[int] = SEEDS,
    epochs: int = 8,
    threads: int = 1,
    device: str = "cpu",
    base: TrainConfig | None = None,
) -> list[Path]:
    """Train every variant x seed with the demo recipe; writes ``OUT/<variant>-s<seed>.pt`` (+ card).

    Args:
        data: the demo data or its folder.
        base: recipe (default: the demo model's architecture, iResNet ``[2, 2, 2, 2]``); its
            ``epochs``, ``threads`` and ``seed`` are replaced by the arguments.

    Models that already exist are kept (so an interrupted run resumes), and a model another process
    is training is skipped, so several ``train`` processes with the same arguments share the work.
    Seeds run in the outer loop, so a partial run has complete seeds. Returns the models written or
    found.
    """
    from gmx.demo import train_demo_model

    if not isinstance(data, DemoData):
        data = load_demo_data(data)
    base = base if base is not None else TrainConfig(layers=(2, 2, 2, 2))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for seed in seeds:
        for v in variants:
            path = model_path(out, v, seed)
            if path.is_file():
                log.info("%s exists, kept", path)
                written.append(path)
                continue
            cfg = dataclasses.replace(base, epochs=epochs, threads=threads, seed=seed)
            vd = variant_data(data, v, seed)
            with _claim(path) as mine:
                if not mine or path.is_file():
                    log.info("%s is trained by another process", path)
                    continue
                tmp = path.with_name(f".{path.name}")
                _, m = train_demo_model(vd, cfg, tmp, device=device)
                for suffix in (".card.json", ".pt"):  # card first: a .pt never lacks its card
                    src = tmp.with_suffix(suffix)
                    if src.is_file():
                        src.rename(path.with_suffix(suffix))
            written.append(path)
            log.info(
                "%s seed %d: %d training images, %.0f s, classifier macro top-1 %.3f",
                v,
                seed,
                int((vd.splits == "train").sum()),
                m["train_seconds"],
                m["classifier_macro_topk_test"][1],
            )
    return written


# ------------------------------------------------------------------------------------------ maps


def _data_fingerprint(data: DemoData) -> str:
    """What the maps depend on: the test images and ids, the training subjects (not the masks)."""
    test = data.splits == "test"
    h = hashlib.sha256()
    for part in (data.image_ids[test], data.labels[test], data.subject_ids[data.splits == "train"]):
        h.update("\n".join(map(str, part)).encode())
    h.update(np.ascontiguousarray(data.images[test]).tobytes())
    return h.hexdigest()[:16]


def syndrome_mean_maps(
    model_path_: Path, data: DemoData, methods: Sequence[str] = METHODS
) -> dict[str, dict[str, np.ndarray]]:
    """method -> syndrome -> native-resolution mean raw map of the model's frequent test images.

    Every image is explained against the logit of its own syndrome; syndromes the model has no
    class for are absent.
    """
    from gmx.aggregate.batch import batch_maps
    from gmx.aggregate.targets import RowTargets
    from gmx.encode import load_model

    model = load_model(model_path_, device="cpu")
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
    maps = batch_maps([model], test.images, targets, methods=list(methods), native=True)
    out: dict[str, dict[str, np.ndarray]] = {}
    for m in methods:
        out[m] = {}
        for syn in np.unique(test.labels):
            rows = (test.labels == syn) & (idx >= 0)
            if rows.any():
                out[m][str(syn)] = maps[m][rows].mean(0, dtype=np.float64).astype(np.float32)
    return out


def _card_notes(path: Path) -> dict:
    card = json.loads(path.with_suffix(".card.json").read_text(encoding="utf-8"))
    notes = card.get("notes") or "{}"
    return json.loads(notes) if isinstance(notes, str) else dict(notes)


@contextmanager
def _claim(path: Path) -> Iterator[bool]:
    """Claim ``path``'s work for this process: yields False if another process holds it.

    The claim is a ``.<name>.lock`` file next to ``path``, created exclusively and removed on exit
    (a process killed hard leaves it behind: delete it by hand).
    """
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        yield False
        return
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield True
    finally:
        lock.unlink(missing_ok=True)


def compute_maps(
    data: DemoData | Path,
    models_dir: Path,
    cache: Path,
    *,
    methods: Sequence[str] = METHODS,
    threads: int = 1,
) -> Path:
    """Per-syndrome mean maps of every ``<variant>-s<seed>.pt`` in ``models_dir``, into one npz.

    Each model's maps are first written to ``<cache stem>.parts/<model>.npz``; a part whose model file
    (size, mtime), demo data (fingerprint of the test images and ids) and methods are unchanged
    is reused, and a part another process is computing is left to it, so several ``maps`` processes
    can run at once and while training continues. The parts present are then gathered into ``cache``
    with the current causal-region masks (a change of the masks alone costs seconds).
    """
    import torch

    from gmx.aggregate.results import syndrome_masks
    from gmx.aggregate.store import atomic_save_npz

    torch.set_num_threads(threads)
    data_dir = "(in memory)"
    if not isinstance(data, DemoData):
        data_dir, data = str(data), load_demo_data(data)
    fingerprint = _data_fingerprint(data)
    test = data.splits == "test"
    syndromes = sorted({str(s) for s in data.labels[test]})
    masks = syndrome_masks(data.labels[test], data.masks[test])
    full_sizes = train_patients(data)
    found = []
    for p in sorted(Path(models_dir).glob("*.pt")):
        mm = _MODEL_RE.match(p.name)
        if mm and p.with_suffix(".card.json").is_file():
            found.append((mm["variant"], int(mm["seed"]), p))
    if not found:
        raise FileNotFoundError(f"no <variant>-s<seed>.pt models in {models_dir}")
    parts_dir = cache.with_name(f"{cache.stem}.parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    gathered: dict[str, list] = {f"map_{m}": [] for m in methods}
    meta: dict[str, list] = {k: [] for k in ("name", "variant", "seed", "top1", "seconds")}
    meta |= {"images": [], "epochs": [], "patients": []}
    for variant, seed, p in found:
        stat = p.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{fingerprint}"
        part = parts_dir / f"{p.stem}.npz"
        if not _part_is_current(part, stamp, methods):
            with _claim(part) as mine:
                if mine:
                    t0 = time.perf_counter()
                    means = syndrome_mean_maps(p, data, methods)
                    blocks = {}
                    for m in methods:
                        shape = next(iter(means[m].values())).shape
                        block = np.full((len(syndromes), *shape), np.nan, np.float32)
                        for j, s in enumerate(syndromes):
                            if s in means[m]:
                                block[j] = means[m][s]
                        blocks[f"map_{m}"] = block
                    atomic_save_npz(part, {"stamp": np.array(stamp), **blocks})
                    log.info("maps of %s: %.0f s", p.name, time.perf_counter() - t0)
        if not _part_is_current(part, stamp, methods):
            log.info("maps of %s are being computed elsewhere; not gathered", p.name)
            continue
        with np.load(part, allow_pickle=False) as z:
            for m in methods:
                gathered[f"map_{m}"].append(z[f"map_{m}"])
        notes = _card_notes(p)
        vd = variant_data(data, variant, seed)
        sizes = train_patients(vd)
        meta["name"].append(p.name)
        meta["variant"].append(variant)
        meta["seed"].append(seed)
        meta["top1"].append(float(notes.get("classifier_macro_top1_test", np.nan)))
        meta["seconds"].append(float(notes.get("train_seconds", np.nan)))
        meta["epochs"].append(int(notes.get("train_config", {}).get("epochs", -1)))
        meta["images"].append(int((vd.splits == "train").sum()))
        meta["patients"].append([sizes.get(s, 0) for s in syndromes])
    if not meta["name"]:
        raise RuntimeError(f"no model's maps are ready in {parts_dir}")
    atomic_save_npz(
        cache,
        {
            "fingerprint": np.array(fingerprint),
            "data_dir": np.array(data_dir),
            "syndromes": np.array(syndromes),
            "full_patients": np.array([full_sizes.get(s, 0) for s in syndromes]),
            "masks": np.stack([masks.get(s, np.zeros((112, 112), bool)) for s in syndromes]),
            "methods": np.array(list(methods)),
            **{k: np.stack(v) for k, v in gathered.items()},
            **{f"model_{k}": np.array(v) for k, v in meta.items()},
        },
    )
    log.info("%d models x %d syndromes -> %s", len(meta["name"]), len(syndromes), cache)
    return cache


def _part_is_current(part: Path, stamp: str, methods: Sequence[str]) -> bool:
    if not part.is_file():
        return False
    with np.load(part, allow_pickle=False) as z:
        return str(z["stamp"]) == stamp and all(f"map_{m}" in z.files for m in methods)


def _load_cache(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        methods = [str(m) for m in z["methods"]]
        return {
            "fingerprint": str(z["fingerprint"]),
            "data_dir": str(z["data_dir"]),
            "syndromes": [str(s) for s in z["syndromes"]],
            "full_patients": z["full_patients"].astype(int),
            "masks": z["masks"].astype(bool),
            "maps": {m: z[f"map_{m}"] for m in methods},
            "name": [str(s) for s in z["model_name"]],
            "variant": [str(s) for s in z["model_variant"]],
            "seed": z["model_seed"].astype(int),
            "top1": z["model_top1"].astype(float),
            "seconds": z["model_seconds"].astype(float),
            "epochs": z["model_epochs"].astype(int),
            "images": z["model_images"].astype(int),
            "patients": z["model_patients"].astype(int),
        }


# -------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap interval (NaN where undefined)."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def text(self, digits: int = 2) -> str:
        if not np.isfinite(self.value):
            return "n/a"
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


@dataclass(frozen=True)
class VariantEffects:
    """One variant x method, compared with the full models.

    Agreement numbers are means over syndromes of the mean Pearson r over model pairs with
    *different* seeds; a "loss" is the full-vs-full r minus the variant-vs-full r of the same
    syndrome (0 = the variant's maps differ from the full model's no more than two full-model seeds
    differ from each other). AUROC changes are variant minus full, per syndrome, then averaged.

    Attributes:
        noise_r: full-vs-full r (run-to-run agreement), over all syndromes.
        r_unchanged, r_reduced: variant-vs-full r of the unchanged / reduced syndromes.
        loss_unchanged, loss_reduced: their losses of agreement.
        size_effect: ``loss_reduced - loss_unchanged`` (> 0: shrinking a class costs its own
            map agreement beyond what the retraining costs every class).
        dauroc_unchanged, dauroc_reduced: AUROC change vs the full models.
        dauroc_size_effect: ``dauroc_reduced - dauroc_unchanged``.
        loss_slope, dauroc_slope: dose-response within the variant: least-squares slope of the
            per-syndrome loss (AUROC change) on the number of halvings of the syndrome's patients.
        n_unchanged, n_reduced: syndromes in each group.
    """

    noise_r: Estimate
    r_unchanged: Estimate
    r_reduced: Estimate
    loss_unchanged: Estimate
    loss_reduced: Estimate
    size_effect: Estimate
    dauroc_unchanged: Estimate
    dauroc_reduced: Estimate
    dauroc_size_effect: Estimate
    loss_slope: Estimate
    dauroc_slope: Estimate
    n_unchanged: int
    n_reduced: int


def _pair_mean(r: np.ndarray, wa: np.ndarray, wb: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Weighted mean over allowed (a, b) pairs of ``r[a, b, c]``: ``(C,)``."""
    w = wa[:, None] * wb[None, :] * allowed
    return np.einsum("ab,abc->c", w, r) / w.sum()


def _slope(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted least-squares slope of ``y`` on ``x``; NaN without spread in ``x``."""
    sw = w.sum()
    if sw <= 0:
        return float("nan")
    xc = x - (w * x).sum() / sw
    sxx = (w * xc * xc).sum()
    return float((w * xc * y).sum() / sxx) if sxx > 1e-12 else float("nan")


def _group_mean(values: np.ndarray, weights: np.ndarray, group: np.ndarray) -> float:
    w = weights * group
    return float((values * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


def variant_effects(
    r_vf: np.ndarray,
    r_ff: np.ndarray,
    auc_v: np.ndarray,
    auc_f: np.ndarray,
    reduced: np.ndarray,
    *,
    seeds_v: Sequence[int],
    seeds_f: Sequence[int],
    halvings: np.ndarray | None = None,
    n_boot: int = 2000,
    rng_seed: int = 0,
) -> VariantEffects:
    """Effects of one variant (and method) with 95 % percentile bootstrap intervals.

    Args:
        r_vf: ``(Sv, Sf, C)`` Pearson r of variant model ``a`` vs full model ``b``, syndrome ``c``.
        r_ff: ``(Sf, Sf, C)`` the same among the full models (the diagonal is never used).
        auc_v, auc_f: ``(Sv, C)`` and ``(Sf, C)`` AUROC of each model's mean map vs the mask.
        reduced: ``(C,)`` bool, the syndromes the variant shrank (the rest kept their size).
        seeds_v, seeds_f: the models' seeds; pairs of equal seed (same initialisation) are skipped.
        halvings: ``(C,)`` how many times each syndrome was halved, ``log2(full / kept patients)``
            (0 for unchanged ones); default: 1 for reduced syndromes. The dose-response slopes
            regress the per-syndrome loss and AUROC change on it.
        n_boot: bootstrap resamples. Each resamples, independently and with replacement, the
            variant's models, the full models, and the syndromes within each group (reduced,
            unchanged), so the interval covers training randomness and which syndromes happen to
            be in a group; the test images are the same for every model and are not resampled.
        rng_seed: of the resampling.

    Inputs are not modified. Syndromes with a NaN anywhere must be removed by the caller.
    """
    r_vf, r_ff = np.asarray(r_vf, np.float64), np.asarray(r_ff, np.float64)
    auc_v, auc_f = np.asarray(auc_v, np.float64), np.asarray(auc_f, np.float64)
    red = np.asarray(reduced, bool)
    dose = red.astype(np.float64) if halvings is None else np.asarray(halvings, np.float64)
    sv, sf, c = r_vf.shape
    if r_ff.shape != (sf, sf, c) or auc_v.shape != (sv, c) or auc_f.shape != (sf, c):
        raise ValueError("r_vf, r_ff, auc_v, auc_f disagree in shape")
    if red.shape != (c,) or dose.shape != (c,) or len(seeds_v) != sv or len(seeds_f) != sf:
        raise ValueError("reduced / seeds do not match the arrays")
    allowed_vf = np.asarray(seeds_v)[:, None] != np.asarray(seeds_f)[None, :]
    allowed_ff = ~np.eye(sf, dtype=bool)
    groups = (~red, red)

    def stats(wv: np.ndarray, wf: np.ndarray, wc: np.ndarray) -> np.ndarray:
        noise = _pair_mean(r_ff, wf, wf, allowed_ff)
        vf = _pair_mean(r_vf, wv, wf, allowed_vf)
        loss = noise - vf
        dauc = (wv @ auc_v) / wv.sum() - (wf @ auc_f) / wf.sum()
        out = [_group_mean(noise, wc, np.ones(c, bool))]
        for values in (vf, loss, dauc):
            a, b = (_group_mean(values, wc, g) for g in groups)
            out += [a, b]
        out += [out[4] - out[3], out[6] - out[5], _slope(dose, loss, wc), _slope(dose, dauc, wc)]
        return np.array(out)

    point = stats(np.ones(sv), np.ones(sf), np.ones(c))
    rng = np.random.default_rng(rng_seed)
    boot = np.empty((n_boot, len(point)))
    idx_c = [np.flatnonzero(g) for g in groups]
    for b in range(n_boot):
        wv = np.bincount(rng.integers(0, sv, sv), minlength=sv).astype(float)
        wf = np.bincount(rng.integers(0, sf, sf), minlength=sf).astype(float)
        if (wf > 0).sum() < 2 or not (wv[:, None] * wf[None, :] * allowed_vf).any():
            wf = np.ones(sf)  # a resample with one distinct full seed has no pair: keep all
        wc = np.zeros(c)
        for ix in idx_c:
            if len(ix):
                np.add.at(wc, ix[rng.integers(0, len(ix), len(ix))], 1.0)
        boot[b] = stats(wv, wf, wc)
    lo, hi = point, point
    if n_boot:
        # an undefined effect (an empty group) is NaN in every resample
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    est = [
        Estimate(float(p), float(lo_), float(hi_)) if np.isfinite(p) else Estimate(*(3 * [np.nan]))
        for p, lo_, hi_ in zip(point, lo, hi, strict=True)
    ]
    noise, r_u, r_r, l_u, l_r, a_u, a_r, size, dsize, slope, dslope = est
    return VariantEffects(
        noise_r=noise,
        r_unchanged=r_u,
        r_reduced=r_r,
        loss_unchanged=l_u,
        loss_reduced=l_r,
        size_effect=size,
        dauroc_unchanged=a_u,
        dauroc_reduced=a_r,
        dauroc_size_effect=dsize,
        loss_slope=slope,
        dauroc_slope=dslope,
        n_unchanged=int((~red).sum()),
        n_reduced=int(red.sum()),
    )


def pairwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Sa, C, ...)`` x ``(Sb, C, ...)`` maps -> ``(Sa, Sb, C)`` Pearson r of flattened maps.

    NaN where either map is constant, as :func:`gmx.explain.pearson` (this is its all-pairs form).
    """
    x = np.asarray(a, np.float64).reshape(a.shape[0], a.shape[1], -1)
    y = np.asarray(b, np.float64).reshape(b.shape[0], b.shape[1], -1)
    x = x - x.mean(-1, keepdims=True)
    y = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
        y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return np.einsum("acp,bcp->abc", x, y)


# -------------------------------------------------------------------------------------- analyse


def analyse(cache: Path, out: Path, *, n_boot: int = 2000, doc: Path | None = None) -> dict:
    """Effects per variant x method from the map cache; writes ``imbalance.json``/``.png``.

    If ``doc`` is a Markdown file with ``<!-- imbalance-table -->`` ... ``<!-- /imbalance-table -->``
    markers, the results table between them is replaced.
    """
    from gmx.aggregate.stats import mask_agreement

    c = _load_cache(cache)
    syn = c["syndromes"]
    variants = np.array(c["variant"])
    seeds = c["seed"]
    methods = list(c["maps"])
    is_full = variants == FULL
    if is_full.sum() < 2:
        raise ValueError(f"need >= 2 full models for the run-to-run baseline, have {is_full.sum()}")
    has_mask = c["masks"].reshape(len(syn), -1).any(1)
    auc = {
        m: np.array([
            [mask_agreement(c["maps"][m][k, j], c["masks"][j]).auroc
             if has_mask[j] and np.isfinite(c["maps"][m][k, j]).all() else np.nan
             for j in range(len(syn))]
            for k in range(len(variants))
        ])
        for m in methods
    }  # fmt: skip
    order = [v for v in (FULL, *VARIANTS, "drop3") if v in set(variants)]
    order += sorted(set(variants) - set(order))
    summary: dict[str, dict] = {}
    per_syndrome = []
    for v in order:
        sel = variants == v
        reduced = (c["patients"][sel] < c["full_patients"][None]).any(0)
        kept = c["patients"][sel].min(0)
        with np.errstate(divide="ignore"):
            halvings = np.log2(c["full_patients"] / np.maximum(kept, 1)) * (kept > 0)
        entry: dict[str, object] = {
            "models": int(sel.sum()),
            "seeds": seeds[sel].tolist(),
            "epochs": sorted(set(c["epochs"][sel].tolist())),
            "train_images": float(c["images"][sel].mean()),
            "train_images_full": int(c["images"][is_full][0]),
            "top1_mean": float(np.nanmean(c["top1"][sel])),
            "top1_sd": float(np.nanstd(c["top1"][sel], ddof=1)) if sel.sum() > 1 else float("nan"),
            "train_seconds_mean": float(np.nanmean(c["seconds"][sel])),
            "reduced": [s for s, r in zip(syn, reduced, strict=True) if r],
            "methods": {},
        }
        for m in methods:
            maps = c["maps"][m]
            ok = np.isfinite(maps[sel | is_full].reshape((sel | is_full).sum(), len(syn), -1)).all(
                (0, 2)
            )
            ok &= np.isfinite(auc[m][sel | is_full]).all(0)
            # a constant mean map (e.g. a Grad-CAM that is 0 everywhere) has no r: leave it out
            ok &= np.isfinite(pairwise_r(maps[sel | is_full], maps[sel | is_full])).all((0, 1))
            r_vf = pairwise_r(maps[sel][:, ok], maps[is_full][:, ok])
            r_ff = pairwise_r(maps[is_full][:, ok], maps[is_full][:, ok])
            eff = variant_effects(
                r_vf,
                r_ff,
                auc[m][sel][:, ok],
                auc[m][is_full][:, ok],
                reduced[ok] if v != FULL else np.zeros(ok.sum(), bool),
                seeds_v=seeds[sel].tolist(),
                seeds_f=seeds[is_full].tolist(),
                halvings=halvings[ok],
                n_boot=n_boot,
            )
            entry["methods"][m] = {
                "left_out": [s for s, k in zip(syn, ok, strict=True) if not k],
                "auroc_mean": float(np.nanmean(auc[m][sel][:, ok])),
                **{k: dataclasses.asdict(x) if isinstance(x, Estimate) else x
                   for k, x in dataclasses.asdict(eff).items()},
            }  # fmt: skip
            allowed = seeds[sel][:, None] != seeds[is_full][None, :]
            for j, s in enumerate(np.array(syn)[ok]):
                per_syndrome.append({
                    "variant": v, "method": m, "syndrome": s,
                    "full_patients": int(c["full_patients"][syn.index(s)]),
                    "train_patients": int(c["patients"][sel][0, syn.index(s)]),
                    "reduced": bool(reduced[syn.index(s)]),
                    "halvings": float(halvings[syn.index(s)]),
                    "r_vs_full": float(r_vf[..., j][allowed].mean()),
                    "r_full_vs_full": float(r_ff[..., j][~np.eye(len(r_ff), dtype=bool)].mean()),
                    "auroc": float(auc[m][sel][:, syn.index(s)].mean()),
                    "auroc_sd": float(auc[m][sel][:, syn.index(s)].std(ddof=1)) if sel.sum() > 1 else float("nan"),
                })  # fmt: skip
        summary[v] = entry
    result = {
        "design": {
            "cache": str(cache),
            "data_dir": c["data_dir"],
            "data_fingerprint": c["fingerprint"],
            "syndromes": syn,
            "full_patients": c["full_patients"].tolist(),
            "bootstrap": f"{n_boot} resamples of variant seeds, full seeds and syndromes "
            "within each group; 95 % percentile intervals; equal-seed pairs skipped",
            "map_resolution": {m: list(c["maps"][m].shape[2:]) for m in methods},
        },
        "variants": summary,
        "per_syndrome": per_syndrome,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "imbalance.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    _plot(summary, per_syndrome, methods, out / "imbalance.png")
    table = results_table(summary, methods)
    if doc is not None and doc.is_file():
        _replace_table(doc, table)
    return result


def results_table(summary: dict[str, dict], methods: Sequence[str]) -> str:
    """Markdown table of the effects (one row per variant x method; 95 % intervals in brackets)."""
    head = (
        "| variant | method | models | training images | top-1 (mean ± sd) | AUROC (mean) | "
        "r full vs full | r unchanged | r reduced | loss unchanged | loss reduced | "
        "**size effect** (loss red. − unch.) | loss per halving | ΔAUROC unchanged | "
        "ΔAUROC reduced | ΔAUROC red. − unch. | ΔAUROC per halving |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for v, e in summary.items():
        for m in methods:
            x = e["methods"][m]

            def t(key: str, x: dict = x) -> str:
                return Estimate(**x[key]).text()

            cells = [
                v,
                m,
                str(e["models"]),
                f"{e['train_images']:.0f} / {e['train_images_full']} "
                f"({100 * e['train_images'] / e['train_images_full']:.0f} %)",
                f"{e['top1_mean']:.3f} ± {e['top1_sd']:.3f}",
                f"{x['auroc_mean']:.3f}",
                t("noise_r"),
            ]
            if v == FULL:
                cells += ["—"] * 10
            else:
                cells += [
                    f"{t('r_unchanged')} (n={x['n_unchanged']})",
                    f"{t('r_reduced')} (n={x['n_reduced']})",
                    *(
                        t(k)
                        for k in ("loss_unchanged", "loss_reduced", "size_effect", "loss_slope")
                    ),
                    *(
                        t(k)
                        for k in (
                            "dauroc_unchanged",
                            "dauroc_reduced",
                            "dauroc_size_effect",
                            "dauroc_slope",
                        )
                    ),
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_MARK_OPEN, _MARK_CLOSE = "<!-- imbalance-table -->", "<!-- /imbalance-table -->"


def _replace_table(doc: Path, table: str) -> None:
    text = doc.read_text(encoding="utf-8")
    if _MARK_OPEN not in text or _MARK_CLOSE not in text:
        log.warning("%s has no table markers; table not written", doc)
        return
    head, rest = text.split(_MARK_OPEN, 1)
    _, tail = rest.split(_MARK_CLOSE, 1)
    doc.write_text(f"{head}{_MARK_OPEN}\n{table}\n{_MARK_CLOSE}{tail}", encoding="utf-8")


def _plot(
    summary: dict[str, dict], per_syndrome: list[dict], methods: Sequence[str], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gradcam": "#1f6f8b", "hirescam": "#e07b39", "saliency": "#6a994e"}
    variants = [v for v in summary if v != FULL]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.4))
    panels = (
        ("loss", "loss of r vs full models, beyond full-vs-full (run-to-run) agreement"),
        ("dauroc", "change in AUROC vs the causal region (variant − full)"),
    )
    width = 0.8 / max(1, 2 * len(methods))
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, m in enumerate(methods):
            for g, (grp, marker) in enumerate((("unchanged", "o"), ("reduced", "s"))):
                xs, ys, lo, hi = [], [], [], []
                for k, v in enumerate(variants):
                    e = summary[v]["methods"][m][f"{key}_{grp}"]
                    if np.isfinite(e["value"]):
                        xs.append(k + (2 * i + g - len(methods) + 0.5) * width)
                        ys.append(e["value"])
                        lo.append(e["value"] - e["low"])
                        hi.append(e["high"] - e["value"])
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, color=colours.get(m), ms=5,
                            mfc="white" if grp == "unchanged" else colours.get(m), capsize=2,
                            label=f"{m}, {grp} classes")  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(variants)), variants)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7)
    ax = axes[1, 0]
    markers = dict(zip(variants, "os^vDP", strict=False))
    for m in methods:
        for v in variants:
            rows = [r for r in per_syndrome if r["variant"] == v and r["method"] == m]
            ax.scatter([r["halvings"] for r in rows],
                       [r["r_full_vs_full"] - r["r_vs_full"] for r in rows], s=22, alpha=0.75,
                       color=colours.get(m), marker=markers[v], label=f"{m}, {v}")  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("halvings of the syndrome's training patients, log2(full / kept)")
    ax.set_ylabel("loss of r (per syndrome)")
    ax.set_title("per syndrome: loss of agreement vs how much the class was shrunk", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, ncol=2)
    ax = axes[1, 1]
    names = list(summary)
    ax.errorbar(range(len(names)), [summary[v]["top1_mean"] for v in names],
                yerr=[summary[v]["top1_sd"] for v in names], fmt="o", color="k", capsize=3)  # fmt: skip
    ax.set_xticks(range(len(names)), names)
    ax.set_title("classifier macro top-1 on the test split (mean ± sd over seeds)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.text(0.01, 0.005, "error bars, top row: 95 % bootstrap intervals (models of each variant, "
             "full models and syndromes within a group resampled)", fontsize=8)  # fmt: skip
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Command line: ``train``, ``maps``, ``analyse``."""
    p = argparse.ArgumentParser(
        prog="python -m gmx.aggregate.imbalance", description=__doc__.splitlines()[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train variant x seed models")
    t.add_argument("--data", type=Path, default=Path("models/demo"))
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--device", default="cpu")
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--variants", nargs="+", default=list(VARIANTS))
    t.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    mp = sub.add_parser("maps", help="per-syndrome mean maps of every model, cached in one npz")
    mp.add_argument("--data", type=Path, default=Path("models/demo"))
    mp.add_argument("--models", type=Path, required=True)
    mp.add_argument("--cache", type=Path, default=None, help="default MODELS/maps.npz")
    mp.add_argument("--threads", type=int, default=1)
    mp.add_argument("--methods", nargs="+", default=list(METHODS))
    a = sub.add_parser("analyse", help="effects and intervals from the cache")
    a.add_argument("--cache", type=Path, required=True)
    a.add_argument("--out", type=Path, default=Path("docs"))
    a.add_argument("--doc", type=Path, default=Path("docs/imbalance.md"))
    a.add_argument("--boot", type=int, default=2000)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "train":
        train_variants(
            args.data,
            args.out,
            variants=args.variants,
            seeds=args.seeds,
            epochs=args.epochs,
            threads=args.threads,
            device=args.device,
        )
    elif args.command == "maps":
        cache = args.cache or args.models / "maps.npz"
        compute_maps(args.data, args.models, cache, methods=args.methods, threads=args.threads)
    else:
        analyse(args.cache, args.out, n_boot=args.boot, doc=args.doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
