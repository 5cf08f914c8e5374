"""Galleries of labelled, embedded faces and GestaltMatcher-Arc's ranking against them.

* Data model: :class:`Syndrome`, :class:`GalleryImage`, :class:`Gallery` (immutable, read-only arrays).
* Files: :func:`save_gallery` (SQLite, atomic; zlib arrays, PNG/WebP photos written verbatim),
  :func:`load_gallery` (fingerprint-checked), :func:`gallery_info` (metadata only).
* Photos: :func:`store_photos` / :func:`encode_photos` -> :class:`EncodedPhotos` (the one path:
  encode once, decode, embed the decoded pixels, store the same bytes).
* Consistency: :func:`check_compatible` (models vs gallery), :func:`verify_embeddings` (stored
  embeddings vs a re-embedding of the stored photos).
* Pictures: the one gallery-picture policy, :func:`gallery_face` -> :class:`GalleryFace`,
  :func:`may_show_photos`, :func:`composite_face` (at least :data:`MIN_COMPOSITE_SUBJECTS`
  patients), :func:`template_face`.
* Ranking: :func:`rank` -> :class:`Ranking` (syndromes, genes, patients, per-variant distances),
  :func:`to_service_json` (the GestaltMatcher service's answer), :func:`cosine_distances` (the
  per-variant distance every ranking and target uses).
* Exports: :func:`to_gene_tsv` (a gene table for variant prioritisation), :func:`to_phenopacket` /
  :func:`to_phenopacket_json` (a GA4GH Phenopacket v2 of the case; see ``docs/exports.md``).
* Facial features: :func:`suggested_features` (the HPO terms of the top-k syndromes, each once) and
  :class:`FeatureChoices` (which the user marked present / absent; the exports take them).
* Calibration: :func:`calibrate` (leave-one-patient-out) / :func:`calibrate_held_out` (labelled
  images not in the gallery) -> :class:`Calibration` (own vs other-syndrome distances, optional
  unaffected cohort from :func:`nearest_syndrome_distances`), stored in the gallery file as
  :attr:`Gallery.calibration`; :meth:`Calibration.statement` -> :class:`CalibratedMatch` (counts,
  PPV with a Wilson interval, in words); :meth:`Calibration.not_closer_message` for the face; :func:`calibration_summary` (distributions,
  PPV curve, AUROC).
* Evaluation: :func:`evaluate` -> macro/micro top-k accuracy as GestaltMatcher-Arc reports it.
* Upstream data: :func:`import_gmdb` (GMDB metadata), :func:`read_encodings` /
  :func:`write_encodings` (GestaltMatcher-Arc encoding CSVs), :func:`gallery_from_encodings`.
* Building: :func:`build_gallery` embeds aligned photos (as stored) with any embedding function.

See ``docs/gallery.md`` for the file schema, the ranking definition and the JSON shape.
"""

from __future__ import annotations

from gmx.gallery._build import EmbedFn, build_gallery, gallery_from_encodings
from gmx.gallery._calibrate import calibrate, calibrate_held_out, nearest_syndrome_distances
from gmx.gallery._calibration import (
    HELD_OUT,
    LEAVE_ONE_PATIENT_OUT,
    NOT_CLOSER_THAN_UNAFFECTED,
    WILSON_Z_95,
    CalibratedMatch,
    Calibration,
    CalibrationSummary,
    DistanceSummary,
    calibration_summary,
    wilson_interval,
)
from gmx.gallery._consistency import (
    CONSISTENT_COSINE,
    EmbeddingCheck,
    check_compatible,
    verify_embeddings,
)
from gmx.gallery._encodings import (
    EncodingTable,
    image_id_from_name,
    read_encodings,
    write_encodings,
)
from gmx.gallery._evaluate import DEFAULT_KS, Evaluation, SyndromeAccuracy, evaluate
from gmx.gallery._exports import (
    DEMO_REFERENCE_ID,
    GENE_TSV_COLUMNS,
    to_gene_tsv,
    to_phenopacket,
    to_phenopacket_json,
)
from gmx.gallery._features import FeatureChoices, SuggestedFeature, suggested_features
from gmx.gallery._gmdb import GmdbRecord, GmdbTables, import_gmdb, read_lookup_table
from gmx.gallery._model import Gallery, GalleryImage, InvalidGalleryError, Syndrome, split_members
from gmx.gallery._photos import (
    DEFAULT_WEBP_QUALITY,
    PHOTO_CODECS,
    EncodedPhotos,
    PhotoCodec,
    encode_photos,
    store_photos,
)
from gmx.gallery._pictures import (
    MIN_COMPOSITE_SUBJECTS,
    FaceKind,
    GalleryFace,
    composite_face,
    gallery_face,
    may_show_photos,
    mean_face,
    template_face,
)
from gmx.gallery._rank import (
    DEMO_NOTICE,
    GeneMatch,
    PatientMatch,
    Ranking,
    SyndromeMatch,
    cosine_distances,
    rank,
    syndrome_ranks,
    to_service_json,
)
from gmx.gallery._storage import (
    METADATA_KEY,
    SCHEMA_VERSION,
    GalleryInfo,
    gallery_info,
    load_gallery,
    save_gallery,
)

__all__ = [
    "CONSISTENT_COSINE",
    "DEFAULT_KS",
    "DEFAULT_WEBP_QUALITY",
    "DEMO_NOTICE",
    "DEMO_REFERENCE_ID",
    "GENE_TSV_COLUMNS",
    "HELD_OUT",
    "LEAVE_ONE_PATIENT_OUT",
    "METADATA_KEY",
    "MIN_COMPOSITE_SUBJECTS",
    "NOT_CLOSER_THAN_UNAFFECTED",
    "PHOTO_CODECS",
    "SCHEMA_VERSION",
    "WILSON_Z_95",
    "CalibratedMatch",
    "Calibration",
    "CalibrationSummary",
    "DistanceSummary",
    "EmbedFn",
    "EmbeddingCheck",
    "EncodedPhotos",
    "EncodingTable",
    "Evaluation",
    "FaceKind",
    "FeatureChoices",
    "Gallery",
    "GalleryFace",
    "GalleryImage",
    "GalleryInfo",
    "GeneMatch",
    "GmdbRecord",
    "GmdbTables",
    "InvalidGalleryError",
    "PatientMatch",
    "PhotoCodec",
    "Ranking",
    "SuggestedFeature",
    "Syndrome",
    "SyndromeAccuracy",
    "SyndromeMatch",
    "build_gallery",
    "calibrate",
    "calibrate_held_out",
    "calibration_summary",
    "check_compatible",
    "composite_face",
    "cosine_distances",
    "encode_photos",
    "evaluate",
    "gallery_face",
    "gallery_from_encodings",
    "gallery_info",
    "image_id_from_name",
    "import_gmdb",
    "load_gallery",
    "may_show_photos",
    "mean_face",
    "nearest_syndrome_distances",
    "rank",
    "read_encodings",
    "read_lookup_table",
    "save_gallery",
    "split_members",
    "store_photos",
    "suggested_features",
    "syndrome_ranks",
    "template_face",
    "to_gene_tsv",
    "to_phenopacket",
    "to_phenopacket_json",
    "to_service_json",
    "verify_embeddings",
    "wilson_interval",
    "write_encodings",
]
