"""Reading the GestaltMatcher DataBase (GMDB) metadata layout.

GMDB is access-controlled: users bring their own copy. Its metadata folder (``gmdb_metadata``) holds,
for a release ``<v>`` such as ``v1.0.3``:

* ``gmdb_train_images_<v>.csv``, ``gmdb_val_images_<v>.csv``, ``gmdb_test_images_<v>.csv`` — the
  classifier's splits of the frequent disorders; columns ``image_id, subject, label``.
* ``gmdb_frequent_gallery_images_<v>.csv``, ``gmdb_frequent_test_images_<v>.csv`` — the frequent
  disorders' (> 6 patients) gallery and test sets; columns ``image_id, subject, label``.
* ``gmdb_rare_gallery_images_<v>.csv``, ``gmdb_rare_test_images_<v>.csv`` — the rare disorders'
  (2-6 patients) sets, plus a ``split`` column (0-9). Evaluation runs once per split; the same image
  may appear in several splits (one row per split).
* ``gmdb_syndromes_<v>.tsv`` — tab-separated, columns ``syndrome_id, syndrome_name, ..., OMIM``.
* the classifier's lookup table (``lookup_table_gmdb*.txt``): a header line ``index_id to disorder_id``
  then one JSON list whose item ``i`` is the label of classifier output ``i``.

``label`` is a ``syndrome_id``. Ids are kept as strings (``"12"``; a float-formatted ``"12.0"`` is
read as ``"12"``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from gmx.errors import GalleryError
from gmx.gallery._model import GalleryImage, Syndrome

logger = logging.getLogger(__name__)

#: Where each kind of record comes from (``GmdbRecord.source``).
SOURCES: tuple[str, ...] = (
    "frequent_gallery",
    "frequent_test",
    "rare_gallery",
    "rare_test",
    "train",
    "val",
    "test",
)

_FILE_STEMS: Mapping[str, str] = MappingProxyType(
    {
        "frequent_gallery": "gmdb_frequent_gallery_images",
        "frequent_test": "gmdb_frequent_test_images",
        "rare_gallery": "gmdb_rare_gallery_images",
        "rare_test": "gmdb_rare_test_images",
        "train": "gmdb_train_images",
        "val": "gmdb_val_images",
        "test": "gmdb_test_images",
        "syndromes": "gmdb_syndromes",
    }
)

_INT_LIKE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_OMIM = re.compile(r"^(?:OMIM:|MIM:)?\s*#?(\d+)(?:\.0*)?$", re.IGNORECASE)
_MISSING = frozenset({"", "nan", "none", "null", "na", "n/a"})


@dataclass(frozen=True)
class GmdbRecord:
    """One row of a GMDB image list.

    Attributes:
        image_id: the photo.
        subject_id: the patient (GMDB column ``subject``).
        label: the syndrome id.
        source: which file it came from, one of :data:`SOURCES`.
        split: the rare-set evaluation split (0-9), ``None`` elsewhere.
    """

    image_id: str
    subject_id: str
    label: str
    source: str
    split: int | None = None


@dataclass(frozen=True, eq=False)
class GmdbTables:
    """The GMDB metadata that was read.

    Attributes:
        version: release suffix of the files (``v1.0.3``; ``""`` for unsuffixed files).
        directory: the folder the files were read from.
        syndromes: read-only mapping syndrome id -> :class:`Syndrome` (every row of the TSV).
        records: every image row read, in file order, sources in :data:`SOURCES` order.
        lookup_table: classifier index -> syndrome id, or ``None`` when no lookup file was found.
        files: the files read.
    """

    version: str
    directory: Path
    syndromes: Mapping[str, Syndrome]
    records: tuple[GmdbRecord, ...]
    lookup_table: tuple[str, ...] | None
    files: tuple[Path, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        """Sources present among the records."""
        return tuple(s for s in SOURCES if any(r.source == s for r in self.records))

    def images(self, sources: Iterable[str] | None = None) -> tuple[GalleryImage, ...]:
        """Distinct images of some sources, ready for a :class:`~gmx.gallery.Gallery`.

        An image listed several times (the rare set repeats images across splits, and a frequent and
        a rare list may overlap) appears once; its :attr:`GalleryImage.split` lists every rare split
        it is in (``"0,3,7"``), and is ``None`` (every split) if any listing has no split, which is how
        GestaltMatcher-Arc treats frequent images in the frequent+rare protocol.

        Args:
            sources: which lists (default: the gallery lists that were read).

        Raises:
            GalleryError: an image is listed with two different subjects or labels.
        """
        wanted = (
            tuple(s for s in ("frequent_gallery", "rare_gallery") if s in self.sources)
            if sources is None
            else tuple(sources)
        )
        unknown = set(wanted) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown GMDB sources {sorted(unknown)}; choose from {SOURCES}")
        first: dict[str, GmdbRecord] = {}
        splits: dict[str, set[int] | None] = {}
        for r in self.records:
            if r.source not in wanted:
                continue
            prev = first.get(r.image_id)
            if prev is None:
                first[r.image_id] = r
                splits[r.image_id] = None if r.split is None else {r.split}
                continue
            if (prev.subject_id, prev.label) != (r.subject_id, r.label):
                raise GalleryError(
                    f"image {r.image_id!r} is listed as subject {prev.subject_id!r} / label {prev.label!r} "
                    f"in {prev.source} but subject {r.subject_id!r} / label {r.label!r} in {r.source}"
                )
            have = splits[r.image_id]
            if have is not None:
                if r.split is None:
                    splits[r.image_id] = None
                else:
                    have.add(r.split)
        return tuple(
            GalleryImage(
                image_id=iid,
                subject_id=r.subject_id,
                syndrome_id=r.label,
                split=None
                if splits[iid] is None
                else ",".join(str(s) for s in sorted(splits[iid] or ())),
            )
            for iid, r in first.items()
        )

    def syndromes_of(self, images: Iterable[GalleryImage]) -> tuple[Syndrome, ...]:
        """The syndromes the given images use, in order of first use."""
        ids = dict.fromkeys(im.syndrome_id for im in images)
        return tuple(self.syndromes[s] for s in ids)


def _norm_id(value: str) -> str:
    v = value.strip()
    if _INT_LIKE.match(v):
        return str(int(float(v))) if "." in v else str(int(v))
    return v


def _norm_version(version: str) -> str:
    v = version.strip()
    return v[1:] if v[:1] in ("v", "V") else v


def _find_metadata_dir(directory: Path) -> Path:
    if not directory.is_dir():
        raise GalleryError(f"GMDB folder {directory} does not exist")
    has_files = any(
        p.is_file() for pattern in ("gmdb_*.csv", "gmdb_*.tsv") for p in directory.glob(pattern)
    )
    if not has_files and (directory / "gmdb_metadata").is_dir():
        return directory / "gmdb_metadata"
    return directory


def _versions_present(directory: Path) -> dict[str, set[str]]:
    """suffix -> stems present, for files named like ``<stem>[_]<suffix>.<ext>``."""
    found: dict[str, set[str]] = {}
    for p in directory.iterdir():
        for key, stem in _FILE_STEMS.items():
            ext = ".tsv" if key == "syndromes" else ".csv"
            if p.name.startswith(stem) and p.name.endswith(ext):
                suffix = p.name[len(stem) : -len(ext)].lstrip("_")
                found.setdefault(suffix, set()).add(key)
    return found


def _pick_version(directory: Path, version: str | None, need: Sequence[str]) -> str:
    present = _versions_present(directory)
    if version is not None:
        want = _norm_version(version)
        matches = [s for s in present if _norm_version(s) == want]
        if not matches:
            raise GalleryError(
                f"no GMDB files of version {version!r} in {directory}; versions found: {sorted(present) or 'none'}"
            )
        return max(matches, key=lambda s: len(present[s]))
    complete = [s for s, keys in present.items() if set(need) <= keys]
    if len(complete) == 1:
        return complete[0]
    if not complete:
        raise GalleryError(
            f"no complete set of GMDB files in {directory}: need "
            f"{[_FILE_STEMS[k] + '_<version>' for k in need]}; found versions {sorted(present) or 'none'}"
        )
    raise GalleryError(
        f"several GMDB versions in {directory}: {sorted(complete)}; pass version=..."
    )


def _path(directory: Path, key: str, suffix: str) -> Path:
    ext = ".tsv" if key == "syndromes" else ".csv"
    stem = _FILE_STEMS[key]
    candidates = (
        [directory / f"{stem}_{suffix}{ext}", directory / f"{stem}{suffix}{ext}"] if suffix else []
    )
    candidates.append(directory / f"{stem}{ext}")
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def _columns(header: Sequence[str]) -> dict[str, int]:
    return {h.strip().lower(): i for i, h in enumerate(header)}


def _read_rows(path: Path, delimiter: str) -> tuple[dict[str, int], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise GalleryError(f"GMDB file {path} is empty")
            rows = [row for row in reader if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GalleryError(f"cannot read GMDB file {path}: {exc}") from exc
    return _columns(header), rows


def _read_image_list(path: Path, source: str) -> list[GmdbRecord]:
    cols, rows = _read_rows(path, ",")
    need = ["image_id", "subject", "label"] + (["split"] if source.startswith("rare") else [])
    missing = [c for c in need if c not in cols]
    if missing:
        raise GalleryError(f"GMDB file {path.name} lacks columns {missing}; it has {sorted(cols)}")
    out: list[GmdbRecord] = []
    for line, row in enumerate(rows, start=2):
        try:
            values = {c: row[cols[c]].strip() for c in need}
        except IndexError:
            raise GalleryError(f"{path.name} line {line}: too few fields: {row!r}") from None
        if not all(values[c] for c in ("image_id", "subject", "label")):
            raise GalleryError(f"{path.name} line {line}: empty image_id/subject/label: {row!r}")
        split = None
        if "split" in values:
            s = values["split"]
            if not _INT_LIKE.match(s):
                raise GalleryError(f"{path.name} line {line}: split must be an integer, got {s!r}")
            split = int(float(s))
        out.append(
            GmdbRecord(
                image_id=_norm_id(values["image_id"]),
                subject_id=_norm_id(values["subject"]),
                label=_norm_id(values["label"]),
                source=source,
                split=split,
            )
        )
    return out


def _split_list(text: str) -> tuple[str, ...]:
    if text.strip().lower() in _MISSING:
        return ()
    return tuple(dict.fromkeys(t.strip() for t in re.split(r"[,;|]", text) if t.strip()))


def _read_syndromes(path: Path) -> dict[str, Syndrome]:
    cols, rows = _read_rows(path, "\t")
    missing = [c for c in ("syndrome_id", "syndrome_name") if c not in cols]
    if missing:
        raise GalleryError(f"GMDB file {path.name} lacks columns {missing}; it has {sorted(cols)}")
    omim_col = cols.get("omim", cols.get("omim_id"))
    gene_col = next(
        (cols[c] for c in ("genes", "gene", "gene_names", "gene_symbols") if c in cols), None
    )
    hpo_col = next((cols[c] for c in ("hpo", "hpo_ids", "hpo_terms") if c in cols), None)
    out: dict[str, Syndrome] = {}
    for line, row in enumerate(rows, start=2):

        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        sid = _norm_id(cell(cols["syndrome_id"]))
        if not sid:
            raise GalleryError(f"{path.name} line {line}: empty syndrome_id: {row!r}")
        if sid in out:
            raise GalleryError(f"{path.name} line {line}: duplicate syndrome_id {sid!r}")
        raw_omim = cell(omim_col)
        m = _OMIM.match(raw_omim)
        omim = m.group(1) if m else (None if raw_omim.lower() in _MISSING else raw_omim)
        out[sid] = Syndrome(
            syndrome_id=sid,
            name=cell(cols["syndrome_name"]) or f"syndrome {sid}",
            omim=omim,
            genes=_split_list(cell(gene_col)),
            hpo=_split_list(cell(hpo_col)),
        )
    return out


def read_lookup_table(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Read a GestaltMatcher-Arc lookup table: classifier index -> syndrome id.

    Format: a header line (``index_id to disorder_id``) then one JSON list of labels.

    Raises:
        GalleryError: missing file, missing list, or a list that is not flat ids.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GalleryError(f"cannot read lookup table {p}: {exc}") from exc
    body = [ln for ln in lines[1:] if ln.strip()]
    if not lines or "to" not in lines[0] or not body:
        raise GalleryError(
            f"{p.name} is not a lookup table: expected a header line then a JSON list"
        )
    try:
        items = json.loads(body[0])
    except ValueError as exc:
        raise GalleryError(f"{p.name}: the lookup list is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not all(
        isinstance(x, int | str) and not isinstance(x, bool) for x in items
    ):
        raise GalleryError(f"{p.name}: expected a JSON list of syndrome ids, got {str(items)[:80]}")
    table = tuple(_norm_id(str(x)) for x in items)
    if len(set(table)) != len(table):
        raise GalleryError(f"{p.name}: the lookup list repeats ids")
    return table


def _find_lookup(directory: Path, suffix: str) -> Path | None:
    cands = sorted(p for d in {directory, directory.parent} for p in d.glob("lookup_table*.txt"))
    if not cands:
        return None
    want = _norm_version(suffix)
    same = [p for p in cands if want and want in p.name]
    unversioned = [p for p in cands if not re.search(r"\d+\.\d+", p.name)]
    if same or unversioned:
        return (same or unversioned)[0]
    logger.info("no lookup table for GMDB %s among %s", suffix, [p.name for p in cands])
    return None


def import_gmdb(
    directory: str | os.PathLike[str],
    version: str | None = None,
    *,
    split: Literal["gallery", "all"] = "gallery",
    kind: Literal["frequent", "rare", "both"] = "both",
    lookup_table: str | os.PathLike[str] | None = None,
) -> GmdbTables:
    """Read GMDB's metadata files.

    Args:
        directory: the ``gmdb_metadata`` folder, or the release folder holding it.
        version: release suffix (``"v1.0.3"`` or ``"1.0.3"``); ``None`` picks the single complete set
            present. Unsuffixed file names are accepted too.
        split: ``"gallery"`` reads the gallery lists; ``"all"`` also the test lists and, when present,
            the classifier's train/val/test lists.
        kind: ``"frequent"``, ``"rare"`` or ``"both"``.
        lookup_table: the lookup table file; default: ``lookup_table*.txt`` in the folder or its
            parent (the release's own version preferred), else none.

    Returns:
        The :class:`GmdbTables`.

    Raises:
        GalleryError: missing files or columns, unreadable rows, or labels absent from the syndrome list.
    """
    if split not in ("gallery", "all"):
        raise ValueError(f"split must be 'gallery' or 'all', got {split!r}")
    if kind not in ("frequent", "rare", "both"):
        raise ValueError(f"kind must be 'frequent', 'rare' or 'both', got {kind!r}")
    folder = _find_metadata_dir(Path(directory))
    kinds = ("frequent", "rare") if kind == "both" else (kind,)
    required = [f"{k}_gallery" for k in kinds] + (
        [f"{k}_test" for k in kinds] if split == "all" else []
    )
    optional = ["train", "val", "test"] if split == "all" and "frequent" in kinds else []
    suffix = _pick_version(folder, version, [*required, "syndromes"])

    files: list[Path] = []
    syn_path = _path(folder, "syndromes", suffix)
    missing = [
        p.name for p in [syn_path] + [_path(folder, k, suffix) for k in required] if not p.is_file()
    ]
    if missing:
        raise GalleryError(f"GMDB files missing in {folder}: {missing}")
    syndromes = _read_syndromes(syn_path)
    files.append(syn_path)

    records: list[GmdbRecord] = []
    for key in SOURCES:
        if key not in required and key not in optional:
            continue
        p = _path(folder, key, suffix)
        if not p.is_file():
            logger.info("optional GMDB file %s not found; skipped", p.name)
            continue
        records.extend(_read_image_list(p, key))
        files.append(p)

    unknown = sorted({r.label for r in records} - syndromes.keys())
    if unknown:
        raise GalleryError(
            f"{len(unknown)} labels in the image lists are not in {syn_path.name}: {unknown[:10]}"
            + (" ..." if len(unknown) > 10 else "")
        )

    lut_path = Path(lookup_table) if lookup_table is not None else _find_lookup(folder, suffix)
    table = None
    if lut_path is not None:
        table = read_lookup_table(lut_path)
        files.append(lut_path)
        strange = [x for x in table if x not in syndromes]
        if strange:
            logger.warning(
                "lookup table %s names %d ids not in the syndrome list: %s",
                lut_path.name,
                len(strange),
                strange[:5],
            )
    return GmdbTables(
        version=suffix,
        directory=folder,
        syndromes=MappingProxyType(syndromes),
        records=tuple(records),
        lookup_table=table,
        files=tuple(files),
    )


__all__ = ["SOURCES", "GmdbRecord", "GmdbTables", "import_gmdb", "read_lookup_table"]
