"""Training of GestaltMatcher-architecture models on aligned faces (the demo model, the imbalance study).

The recipe follows GestaltMatcher-Arc's fine-tuning: an iResNet embedding, ``Dropout(0.5) -> Linear``
classifier, plain class-weighted softmax cross-entropy (no margin), and augmentation by flips, colour
jitter, grey conversion and small geometric jitter. The ranking never uses the classifier: it only
shapes the embedding.

Everything is seeded; on the CPU a run is repeatable bit for bit with the same torch version and
thread count.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gmx.encode.model import denormalize, normalize, preprocess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (written into the model card)."""

    layers: tuple[int, int, int, int] = (1, 2, 2, 1)
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    embedding_dim: int = 512
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    dropout: float = 0.5
    flip_p: float = 0.5
    grey_p: float = 0.2
    jitter: float = 0.2
    max_shift_px: float = 3.0
    max_rotate_deg: float = 5.0
    max_scale: float = 0.05
    seed: int = 0
    threads: int = 2

    def as_dict(self) -> dict[str, object]:
        """Plain dict for model cards."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class EpochLog:
    """What happened in one epoch."""

    epoch: int
    loss: float
    train_accuracy: float
    seconds: float
    val_accuracy: float | None = None


@dataclass(frozen=True)
class TrainResult:
    """A trained model and its history."""

    backbone: nn.Module
    classifier: nn.Sequential
    history: tuple[EpochLog, ...]
    class_weights: np.ndarray
    config: TrainConfig
    seconds: float
    extra: dict[str, object] = field(default_factory=dict)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights normalised to mean 1 over the classes present.

    Args:
        labels: ``(N,)`` int class indices.
        n_classes: number of classes.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    w = np.zeros(n_classes, dtype=np.float64)
    present = counts > 0
    w[present] = 1.0 / counts[present]
    w[present] *= present.sum() / w[present].sum()
    return w.astype(np.float32)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random flip, colour jitter, grey and small similarity jitter of a normalised batch."""
    n = x.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    x = denormalize(x)  # back to [0, 1]
    flip = u(n) < cfg.flip_p
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if cfg.jitter > 0:
        b = 1 + (u(n, 1, 1, 1) * 2 - 1) * cfg.jitter
        c = 1 + (u(n, 1, 1, 1) * 2 - 1) * cfg.jitter
        s = 1 + (u(n, 1, 1, 1) * 2 - 1) * cfg.jitter
        x = x * b
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
        x = (x - grey) * s + grey
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    x = torch.where((u(n) < cfg.grey_p)[:, None, None, None], grey, x)
    x = x.clamp(0, 1)
    if cfg.max_shift_px or cfg.max_rotate_deg or cfg.max_scale:
        h, w = x.shape[-2:]
        ang = (u(n) * 2 - 1) * math.radians(cfg.max_rotate_deg)
        scale = 1 + (u(n) * 2 - 1) * cfg.max_scale
        tx = (u(n) * 2 - 1) * cfg.max_shift_px * 2 / w
        ty = (u(n) * 2 - 1) * cfg.max_shift_px * 2 / h
        cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # Pad with black (0 in [0, 1]) like the aligner's border.
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return normalize(x)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    cfg: TrainConfig,
    *,
    build_backbone: Callable[[TrainConfig], nn.Module],
    val: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[EpochLog], None] | None = None,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train backbone + ``Dropout -> Linear`` classifier with class-weighted cross-entropy.

    Args:
        images: ``(N, 112, 112, 3)`` uint8 RGB aligned faces.
        labels: ``(N,)`` int class indices in ``[0, n_classes)``.
        n_classes: size of the classifier.
        cfg: hyper-parameters.
        build_backbone: makes the (random-init) backbone from the config.
        val: optional ``(images, labels)`` for a per-epoch classifier accuracy.
        progress: called after every epoch.
        device: where the model runs. Augmentation always runs on the CPU with a seeded generator,
            so the sampled batches are identical on every device (the arithmetic is not).
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (images.shape[0],) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must be (N,) in [0, {n_classes}), got shape {labels.shape}")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(images, labels, n_classes, cfg, build_backbone, val, progress, device)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    cfg: TrainConfig,
    build_backbone: Callable[[TrainConfig], nn.Module],
    val: tuple[np.ndarray, np.ndarray] | None,
    progress: Callable[[EpochLog], None] | None,
    device: str | torch.device,
) -> TrainResult:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(cfg.seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    backbone = build_backbone(cfg).to(device)
    classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.embedding_dim, n_classes))
    classifier = classifier.to(device)
    params = [p for p in [*backbone.parameters(), *classifier.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(images) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15
    )
    weights = class_weights(labels, n_classes)
    loss_fn = nn.CrossEntropyLoss(
        weight=torch.from_numpy(weights).to(device), label_smoothing=cfg.label_smoothing
    )
    history: list[EpochLog] = []
    t_start = time.perf_counter()
    for epoch in range(cfg.epochs):
        backbone.train()
        classifier.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(images))
        loss_sum, correct = 0.0, 0
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = augment(preprocess(images[idx]), cfg, gen).to(device)
            y = torch.from_numpy(labels[idx]).to(device)
            logits = classifier(backbone(x))
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        val_acc = None
        if val is not None:
            val_acc = float(
                (predict_logits(backbone, classifier, val[0]).argmax(1) == val[1]).mean()
            )
        entry = EpochLog(
            epoch=epoch + 1,
            loss=loss_sum / len(images),
            train_accuracy=correct / len(images),
            seconds=time.perf_counter() - t0,
            val_accuracy=val_acc,
        )
        history.append(entry)
        log.info("epoch %d: %s", entry.epoch, entry)
        if progress is not None:
            progress(entry)
    backbone.eval().cpu()
    classifier.eval().cpu()
    return TrainResult(
        backbone=backbone,
        classifier=classifier,
        history=tuple(history),
        class_weights=weights,
        config=cfg,
        seconds=time.perf_counter() - t_start,
    )


@torch.inference_mode()
def embed_images(backbone: nn.Module, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """``(N, D)`` float32 embeddings of aligned faces (eval mode, no augmentation)."""
    backbone.eval()
    dev = next(backbone.parameters()).device
    out = [
        backbone(preprocess(images[i : i + batch_size]).to(dev)).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float32)


@torch.inference_mode()
def predict_logits(
    backbone: nn.Module, classifier: nn.Module, images: np.ndarray, batch_size: int = 128
) -> np.ndarray:
    """``(N, C)`` classifier logits (eval mode)."""
    backbone.eval()
    classifier.eval()
    emb = torch.from_numpy(embed_images(backbone, images, batch_size))
    dev = next(classifier.parameters()).device
    return classifier(emb.to(dev)).cpu().numpy()


def macro_topk_from_logits(
    logits: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[int, float]:
    """Macro (per-class averaged) top-k accuracy of classifier logits."""
    order = np.argsort(-logits, axis=1)
    out = {}
    for k in ks:
        hit = (order[:, :k] == labels[:, None]).any(1)
        out[k] = float(np.mean([hit[labels == c].mean() for c in np.unique(labels)]))
    return out


__all__ = [
    "EpochLog",
    "TrainConfig",
    "TrainResult",
    "augment",
    "class_weights",
    "embed_images",
    "macro_topk_from_logits",
    "predict_logits",
    "train_classifier",
]
