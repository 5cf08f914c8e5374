"""Batch runs over a gallery: per-image maps into a resumable, shardable folder.

:func:`run_batch` explains every chosen gallery image against its own syndrome
(:mod:`gmx.aggregate.targets`) with :func:`~gmx.aggregate.batch.batch_maps` and stores the raw maps
chunk by chunk (:class:`~gmx.aggregate.store.BatchStore`). :func:`load_batch` reads a folder back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmx.aggregate.batch import batch_maps, check_methods
from gmx.aggregate.store import BatchStore, BatchStoreError, Shard, read_manifest
from gmx.aggregate.targets import TARGET_MODES, TargetMode, own_syndrome_targets
from gmx.encode import Ensemble
from gmx.gallery import Gallery, check_compatible

#: Methods of the precomputed demo results and the CLI default.
DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "hirescam", "gradcam_signed", "saliency")


@dataclass(frozen=True, eq=False)
class BatchMaps:
    """Per-image raw maps of a batch run.

    Attributes:
        keys: ``N`` row keys (gallery image ids).
        indices: ``(N,)`` gallery row of each key.
        syndromes: ``(N,)`` str label of each row.
        subjects: ``(N,)`` str subject of each row.
        maps: method -> ``(N, h, w)`` float32 raw maps (NaN rows: unfinished or no target).
        finished: ``(N,)`` bool rows whose chunk is done.
        manifest: the run's configuration.
    """

    keys: tuple[str, ...]
    indices: np.ndarray
    syndromes: np.ndarray
    subjects: np.ndarray
    maps: Mapping[str, np.ndarray]
    finished: np.ndarray
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every row's chunk is finished."""
        return bool(self.finished.all())


@dataclass(frozen=True)
class BatchRun:
    """What one run into a :class:`~gmx.aggregate.store.BatchStore` folder did: a
    :func:`run_batch` call, or a scorecard run (:func:`gmx.metrics.scorecard.run_scorecard` and
    its sharded form, where ``rows_done_now`` counts faces scored).

    Attributes:
        root: the run folder.
        chunks_total: chunks of the whole run.
        chunks_done_now: chunks this call computed.
        chunks_skipped: chunks of this shard already finished before the call.
        rows_done_now: images this call explained.
        seconds: wall time of the call.
    """

    root: Path
    chunks_total: int
    chunks_done_now: int
    chunks_skipped: int
    rows_done_now: int
    seconds: float


def select_indices(
    gallery: Gallery, *, split: str | None = None, syndromes: Sequence[str] | None = None
) -> np.ndarray:
    """Gallery rows in ``split`` (images without a split belong to every split) and ``syndromes``.

    Raises:
        ValueError: if nothing is selected.
    """
    keep = []
    wanted = None if syndromes is None else set(syndromes)
    for i, im in enumerate(gallery.images):
        if split is not None and im.splits is not None and split not in im.splits:
            continue
        if wanted is not None and im.syndrome_id not in wanted:
            continue
        keep.append(i)
    if not keep:
        raise ValueError(f"no gallery images in split={split!r}, syndromes={syndromes!r}")
    return np.asarray(keep, np.int64)


def _classes(models: Any) -> tuple[str, ...]:
    first = models[0] if isinstance(models, (list, tuple)) else models
    card = getattr(first, "card", None)
    return tuple(getattr(card, "classes", ()) or ())


def gallery_ensemble(models: Any, gallery: Gallery) -> Ensemble:
    """The ensemble of ``models`` with the gallery's TTA, checked to have embedded the gallery.

    Args:
        models: a ``LoadedModel`` or a sequence of them, in ensemble order.
        gallery: the gallery.

    Raises:
        GalleryError: other models or TTA variants than the gallery's (:func:`check_compatible`).
    """
    members = list(models) if isinstance(models, (list, tuple)) else [models]
    ensemble = Ensemble(
        members,
        flip=any(v.flip for v in gallery.variants),
        grey=any(v.grey for v in gallery.variants),
    )
    check_compatible(ensemble, gallery)
    return ensemble


def run_batch(
    models: Any,
    gallery: Gallery,
    out_dir: str | Path,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    target: TargetMode = "similarity",
    indices: Sequence[int] | np.ndarray | None = None,
    variants: Sequence[int] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 0,
    chunk: int = 64,
    shard: Shard | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchRun:
    """Explain gallery images against their own syndrome and store the maps in ``out_dir``.

    Resumable: finished chunks are skipped; a run can be interrupted at any time and rerun with the
    same arguments. Shardable: ``shard=Shard(i, n)`` computes every n-th chunk.

    Args:
        models: the model(s) that embedded the gallery (``LoadedModel`` or a sequence).
        gallery: the gallery; its photos are explained (``gallery.photos`` must exist).
        out_dir: run folder.
        methods: registry names.
        target: target mode (see :mod:`gmx.aggregate.targets`).
        indices: gallery rows to explain (default all; see :func:`select_indices`).
        variants: gallery variant indices explained and averaged (default ``[0]``).
        params: per-method parameter overrides.
        batch_size: faces per forward pass (0 = automatic).
        chunk: rows per stored chunk.
        shard: which part of the work this process does (default all).
        progress: ``progress(done_rows, shard_rows)`` as batches finish.

    Raises:
        ValueError: for bad arguments (unknown methods or parameters, target, indices, variants)
            or a gallery without photos; checked before ``out_dir`` is created or written.
        GalleryError: if the models did not embed the gallery (:func:`gmx.gallery.check_compatible`;
            checked before anything is computed or written).
        BatchStoreError: if ``out_dir`` holds a different run.
    """
    import time

    if gallery.photos is None:
        raise ValueError(f"gallery {gallery.name!r} has no photos to explain")
    ensemble = gallery_ensemble(models, gallery)
    # Everything is checked before the folder and its manifest exist: a typo must not leave a
    # manifest that refuses the corrected command.
    check_methods(methods, params)
    if target not in TARGET_MODES:
        raise ValueError(f"target must be one of {list(TARGET_MODES)}, got {target!r}")
    if chunk < 1 or batch_size < 0:
        raise ValueError(f"chunk must be >= 1 and batch_size >= 0, got {chunk} and {batch_size}")
    n_images = len(gallery.images)
    idx = np.arange(n_images) if indices is None else np.asarray(indices, np.int64).reshape(-1)
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= n_images:
        raise ValueError(f"indices must be a non-empty selection of rows 0..{n_images - 1}")
    var = [0] if variants is None else [int(v) for v in variants]
    if not var or any(not 0 <= v < len(gallery.variants) for v in var):
        raise ValueError(
            f"variants must be gallery variant numbers 0..{len(gallery.variants) - 1}, got {var}"
        )
    classes = _classes(models)
    config = {
        "keys": [gallery.images[i].image_id for i in idx],
        "methods": list(methods),
        "params": {k: dict(v) for k, v in (params or {}).items()},
        "target": target,
        "variants": var,
        "model_fingerprint": ensemble.fingerprint,
        "gallery": gallery.name,
        "gallery_version": gallery.version,
    }
    store = BatchStore(out_dir, config, chunk=chunk)
    shard = shard or Shard()
    start = time.perf_counter()
    mine = [k for k in range(store.n_chunks) if shard.owns(k)]
    todo = store.pending(shard)
    total_rows = sum(len(store.chunk_rows(k)) for k in todo)
    done_rows = 0
    gvariants = [gallery.variants[v] for v in var]
    for k in todo:
        rows = np.asarray(store.chunk_rows(k))
        gi = idx[rows]
        targets = own_syndrome_targets(gallery, gi, target, classes=classes, variants=var)
        base = done_rows

        def step(done: int, _total: int, base: int = base) -> None:
            if progress is not None:
                progress(base + done, total_rows)

        maps = batch_maps(
            models,
            gallery.photos[gi],
            targets,
            methods=methods,
            variants=gvariants,
            params=params,
            batch_size=batch_size,
            progress=step,
        )
        store.write(k, maps)
        done_rows += len(rows)
        if progress is not None:
            progress(done_rows, total_rows)
    return BatchRun(
        root=store.root,
        chunks_total=store.n_chunks,
        chunks_done_now=len(todo),
        chunks_skipped=len(mine) - len(todo),
        rows_done_now=done_rows,
        seconds=time.perf_counter() - start,
    )


def load_batch(out_dir: str | Path, gallery: Gallery) -> BatchMaps:
    """Read a run folder back, joined with the gallery's labels and subjects.

    Raises:
        BatchStoreError: if the folder has no manifest, names images the gallery lacks, or holds
            damaged chunks (each named; rerunning ``run_batch`` recomputes them).
    """
    root = Path(out_dir)
    manifest = read_manifest(root)
    config = {k: v for k, v in manifest.items() if k not in ("store_version", "chunk")}
    store = BatchStore(root, config, chunk=manifest["chunk"])
    maps, finished = store.load()
    lookup = {im.image_id: i for i, im in enumerate(gallery.images)}
    missing = [k for k in store.keys if k not in lookup]
    if missing:
        raise BatchStoreError(
            f"{len(missing)} image ids of {root} are not in the gallery: {missing[:3]}"
        )
    indices = np.asarray([lookup[k] for k in store.keys], np.int64)
    syn = np.array([gallery.images[i].syndrome_id for i in indices])
    subj = np.array([gallery.images[i].subject_id for i in indices])
    return BatchMaps(store.keys, indices, syn, subj, maps, finished, manifest)


__all__ = [
    "DEFAULT_METHODS",
    "BatchMaps",
    "BatchRun",
    "gallery_ensemble",
    "load_batch",
    "run_batch",
    "select_indices",
]
