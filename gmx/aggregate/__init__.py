"""Syndrome-level explanations: per-image maps for a whole gallery, then means, spread, composites.

* Targets (:mod:`~gmx.aggregate.targets`): each image against its own syndrome
  (:func:`own_syndrome_targets`: similarity to the nearest other patient of the syndrome, its logit,
  or ``auto``), or an outside cohort against one syndrome (:func:`syndrome_targets`).
* Batch maps (:func:`batch_maps`): :func:`gmx.explain.explain_batch` runs every batchable
  registered method from one shared forward/backward per batch; per-image maps equal
  :func:`gmx.explain.explain`'s.
* Runs (:func:`run_batch`, :func:`load_batch`): resumable, shardable folders of atomic npz chunks
  (:class:`BatchStore`, :class:`Shard`).
* Statistics (:func:`syndrome_map`, :func:`split_half`, :func:`mask_agreement`,
  :func:`composite_face_warped`; plain composites follow the one gallery-picture policy,
  :func:`gmx.gallery.composite_face`) and summaries (:func:`summarize`,
  :func:`cohort_maps`, :class:`SyndromeResults`, :func:`save_results`, :func:`load_results`).
* Localisation against nulls on held-out images (:func:`localisation`, :class:`Localisation`,
  :func:`explain_held_out`, :mod:`~gmx.aggregate.localisation`).

See ``docs/aggregate.md``.
"""

from __future__ import annotations

from gmx.aggregate.batch import batch_maps
from gmx.aggregate.localisation import (
    NULLS,
    Localisation,
    LocalisationScore,
    LocalisationSummary,
    NullComparison,
    explain_held_out,
    localisation,
)
from gmx.aggregate.results import (
    ResultsError,
    SyndromeResults,
    cohort_maps,
    load_results,
    save_results,
    summarize,
    syndrome_masks,
)
from gmx.aggregate.run import (
    DEFAULT_METHODS,
    BatchMaps,
    BatchRun,
    load_batch,
    run_batch,
    select_indices,
)
from gmx.aggregate.stats import (
    MaskAgreement,
    SyndromeMap,
    auroc,
    composite_face_warped,
    mask_agreement,
    split_half,
    syndrome_map,
    to_template,
)
from gmx.aggregate.store import BatchStore, BatchStoreError, Shard
from gmx.aggregate.targets import (
    TARGET_MODES,
    RowTargets,
    TargetMode,
    own_syndrome_targets,
    syndrome_targets,
)

__all__ = [
    "DEFAULT_METHODS",
    "NULLS",
    "TARGET_MODES",
    "BatchMaps",
    "BatchRun",
    "BatchStore",
    "BatchStoreError",
    "Localisation",
    "LocalisationScore",
    "LocalisationSummary",
    "MaskAgreement",
    "NullComparison",
    "ResultsError",
    "RowTargets",
    "Shard",
    "SyndromeMap",
    "SyndromeResults",
    "TargetMode",
    "auroc",
    "batch_maps",
    "cohort_maps",
    "composite_face_warped",
    "explain_held_out",
    "load_batch",
    "load_results",
    "localisation",
    "mask_agreement",
    "own_syndrome_targets",
    "run_batch",
    "save_results",
    "select_indices",
    "split_half",
    "summarize",
    "syndrome_map",
    "syndrome_masks",
    "syndrome_targets",
    "to_template",
]
