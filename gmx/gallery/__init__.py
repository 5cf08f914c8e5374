"""Galleries of labelled, embedded faces and GestaltMatcher-Arc's ranking against them.

* Data model: :class:`Syndrome`, :class:`GalleryImage`, :class:`Gallery` (immutable, read-only arrays).
* Files: :func:`save_gallery` (SQLite, atomic; zlib arrays, PNG/WebP photos), :func:`load_gallery`
  (fingerprint-checked), :func:`gallery_info` (metadata only), :func:`roundtrip_photos` (the pixels a
  photo codec stores).
* Ranking: :func:`rank` -> :class:`Ranking` (syndromes, genes, patients, per-variant distances),
  :func:`to_service_json` (the GestaltMatcher service's answer), :func:`cosine_distances` (the
  per-variant distance every ranking and target uses).
* Evaluation: :func:`evaluate` -> macro/micro top-k accuracy as GestaltMatcher-Arc reports it.
* Upstream data: :func:`import_gmdb` (GMDB metadata), :func:`read_encodings` /
  :func:`write_encodings` (GestaltMatcher-Arc encoding CSVs), :func:`gallery_from_encodings`.
* Building: :func:`build_gallery` embeds aligned photos with any embedding function.

See ``docs/gallery.md`` for the file schema, the ranking definition and the JSON shape.
"""

from __future__ import annotations

from gmx.gallery._build import EmbedFn, build_gallery, gallery_from_encodings
from gmx.gallery._encodings import (
    EncodingTable,
    image_id_from_name,
    read_encodings,
    write_encodings,
)
from gmx.gallery._evaluate import DEFAULT_KS, Evaluation, SyndromeAccuracy, evaluate
from gmx.gallery._gmdb import GmdbRecord, GmdbTables, import_gmdb, read_lookup_table
from gmx.gallery._model import Gallery, GalleryImage, InvalidGalleryError, Syndrome, split_members
from gmx.gallery._rank import (
    GeneMatch,
    PatientMatch,
    Ranking,
    SyndromeMatch,
    cosine_distances,
    rank,
    to_service_json,
)
from gmx.gallery._storage import (
    PHOTO_CODECS,
    SCHEMA_VERSION,
    GalleryInfo,
    PhotoCodec,
    gallery_info,
    load_gallery,
    roundtrip_photos,
    save_gallery,
)

__all__ = [
    "DEFAULT_KS",
    "PHOTO_CODECS",
    "SCHEMA_VERSION",
    "EmbedFn",
    "EncodingTable",
    "Evaluation",
    "Gallery",
    "GalleryImage",
    "GalleryInfo",
    "GeneMatch",
    "GmdbRecord",
    "GmdbTables",
    "InvalidGalleryError",
    "PatientMatch",
    "PhotoCodec",
    "Ranking",
    "Syndrome",
    "SyndromeAccuracy",
    "SyndromeMatch",
    "build_gallery",
    "cosine_distances",
    "evaluate",
    "gallery_from_encodings",
    "gallery_info",
    "image_id_from_name",
    "import_gmdb",
    "load_gallery",
    "rank",
    "read_encodings",
    "read_lookup_table",
    "roundtrip_photos",
    "save_gallery",
    "split_members",
    "to_service_json",
    "write_encodings",
]
