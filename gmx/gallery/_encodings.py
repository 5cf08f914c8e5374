"""GestaltMatcher-Arc encoding files: read and write the ``;``-separated CSV, refuse pickles by default.

The CSV (``predict_ensemble.py`` / ``predict.py`` upstream) has one row per image and variant::

    img_name;model;flip;gray;class_conf;representations
    4883_crop_square.jpg;m0;0;0;[0.01, ...];[0.0123, -0.0456, ...]

* ``img_name``: the aligned photo's file name; the image id is the part before the first ``_``
  (upstream: ``img_name.split('_')[0]``), or the name without extension when it has no ``_``.
  Integer-like ids are canonicalised (``"0042"`` -> ``"42"``) as upstream's integer parsing does.
* ``model``: the ensemble member's name (upstream writes ``m0``, ``m1``, ...). gmx numbers models in
  order of first appearance in the file: the first distinct name is ``Variant.model == 0``.
* ``flip`` / ``gray``: ``0``/``1`` (``True``/``False`` accepted) -> ``Variant.flip`` / ``Variant.grey``.
* ``class_conf``: the classifier's output as a list of numbers (``[0]`` for a model without one).
* ``representations``: the embedding as a list of numbers (upstream writes L2-normalised vectors;
  cosine distances do not care).

Lists are parsed by a strict number-list parser (never ``eval``). Variants are ordered model, then flip,
then grey (:data:`gmx.constants.TTA_ORDER`), whatever the row order; every image must have the same set.
Pickled pandas DataFrames (upstream's ``*.pkl``) can run arbitrary code when loaded: they are refused
unless ``allow_pickle=True``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmx._io import atomic_write_text
from gmx.errors import GalleryError
from gmx.gallery._gmdb import _norm_id
from gmx.gallery._model import Gallery
from gmx.variants import Variant

logger = logging.getLogger(__name__)

HEADER: tuple[str, ...] = ("img_name", "model", "flip", "gray", "class_conf", "representations")

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUM_LIST = re.compile(rf"^\[\s*(?:{_NUM}\s*(?:,\s*{_NUM}\s*)*)?\]$")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck")
_BOOL = {"0": False, "1": True, "false": False, "true": True, "0.0": False, "1.0": True}


@dataclass(frozen=True, eq=False)
class EncodingTable:
    """Embeddings read from (or to be written to) an encodings file.

    Attributes:
        image_ids: the N image ids, in order of first appearance.
        file_names: the N ``img_name`` values they came from.
        variants: the V variants, model-major, then flip, then grey.
        model_names: upstream model names; ``model_names[v.model]`` is variant ``v``'s.
        embeddings: ``(N, V, D)`` float32 read-only.
        class_conf: per variant, ``(N, C_v)`` float32 read-only classifier outputs (``C_v == 1`` and
            zeros for models without a classifier, which upstream writes as ``[0]``).
    """

    image_ids: tuple[str, ...]
    file_names: tuple[str, ...]
    variants: tuple[Variant, ...]
    model_names: tuple[str, ...]
    embeddings: np.ndarray
    class_conf: tuple[np.ndarray, ...]

    def index_of(self, image_id: str) -> int:
        """Position of an image id (``KeyError`` if absent)."""
        try:
            return self.image_ids.index(image_id)
        except ValueError:
            raise KeyError(f"no encoding for image {image_id!r}") from None


def parse_float_list(text: str) -> np.ndarray:
    """Parse ``"[1.0, -2e-3, 4]"`` into a float64 array, strictly.

    Only a bracketed, comma-separated list of decimal numbers is accepted (no ``nan``/``inf``, no
    expressions, no nesting); anything else raises ``ValueError`` quoting the start of the text.
    """
    s = text.strip()
    if not _NUM_LIST.match(s):
        raise ValueError(f"not a list of numbers: {s[:60]!r}{'...' if len(s) > 60 else ''}")
    body = s[1:-1].strip()
    if not body:
        return np.zeros(0, dtype=np.float64)
    values = np.array(body.split(","), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"list holds a number too large for float64: {s[:60]!r}")
    return values


def image_id_from_name(img_name: str) -> str:
    """Upstream's image id of an encodings row: text before the first ``_`` (else the stem)."""
    name = img_name.strip()
    base = name.split("_", 1)[0] if "_" in name else os.path.splitext(name)[0]
    return _norm_id(base)


def _parse_bool(value: Any, what: str, where: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    key = str(value).strip().lower()
    if key not in _BOOL:
        raise GalleryError(f"{where}: {what} must be 0/1, got {value!r}")
    return _BOOL[key]


def _vector(value: Any, what: str, where: str) -> np.ndarray:
    if isinstance(value, str):
        try:
            return parse_float_list(value)
        except ValueError as exc:
            raise GalleryError(f"{where}: bad {what}: {exc}") from None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise GalleryError(f"{where}: {what} holds NaN or inf")
    return arr


def _assemble(rows: Sequence[tuple[str, str, Any, Any, Any, Any]], source: str) -> EncodingTable:
    """Rows of (img_name, model, flip, gray, class_conf, representation) -> table."""
    if not rows:
        raise GalleryError(f"{source} holds no encodings")
    model_index: dict[str, int] = {}
    ids: dict[str, int] = {}
    names: list[str] = []
    per_image: list[dict[Variant, tuple[np.ndarray, np.ndarray]]] = []
    dim: int | None = None
    for k, (img_name, model, flip, gray, conf, rep) in enumerate(rows):
        where = f"{source} row {k + 2}"
        model = str(model).strip()
        if not model:
            raise GalleryError(f"{where}: empty model name")
        m = model_index.setdefault(model, len(model_index))
        variant = Variant(m, _parse_bool(flip, "flip", where), _parse_bool(gray, "gray", where))
        vec = _vector(rep, "representations", where)
        if dim is None:
            dim = vec.size
        if vec.size != dim or dim == 0:
            raise GalleryError(f"{where}: embedding has {vec.size} numbers, earlier rows {dim}")
        conf_vec = _vector(conf, "class_conf", where)
        iid = image_id_from_name(str(img_name))
        if not iid:
            raise GalleryError(f"{where}: cannot take an image id from img_name {img_name!r}")
        pos = ids.get(iid)
        if pos is None:
            pos = ids[iid] = len(names)
            names.append(str(img_name).strip())
            per_image.append({})
        elif names[pos] != str(img_name).strip():
            raise GalleryError(
                f"{where}: img_name {img_name!r} and {names[pos]!r} both give image id {iid!r}"
            )
        if variant in per_image[pos]:
            raise GalleryError(f"{where}: image {iid!r} has variant {variant.label} twice")
        per_image[pos][variant] = (vec, conf_vec)

    variants = tuple(sorted(per_image[0]))
    for iid, pos in ids.items():
        have = tuple(sorted(per_image[pos]))
        if have != variants:
            raise GalleryError(
                f"{source}: image {iid!r} has variants {[v.label for v in have]}, "
                f"the first image {[v.label for v in variants]}"
            )
    n, v_count = len(names), len(variants)
    emb = np.empty((n, v_count, dim or 0), dtype=np.float32)
    confs: list[np.ndarray] = []
    for j, var in enumerate(variants):
        sizes = {per_image[i][var][1].size for i in range(n)}
        if len(sizes) != 1:
            raise GalleryError(
                f"{source}: class_conf of variant {var.label} has varying lengths {sorted(sizes)}"
            )
        c = np.empty((n, sizes.pop()), dtype=np.float32)
        for i in range(n):
            vec, conf_vec = per_image[i][var]
            emb[i, j] = vec
            c[i] = conf_vec
        c.setflags(write=False)
        confs.append(c)
    emb.setflags(write=False)
    return EncodingTable(
        image_ids=tuple(ids),
        file_names=tuple(names),
        variants=variants,
        model_names=tuple(model_index),
        embeddings=emb,
        class_conf=tuple(confs),
    )


def _is_pickle(path: Path) -> bool:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _read_pickle_rows(path: Path) -> list[tuple[str, str, Any, Any, Any, Any]]:
    try:
        import pandas as pd
    except ImportError as exc:
        raise GalleryError(
            f"{path.name} is a pickled pandas DataFrame and pandas is not installed; install pandas, or "
            "convert the file to the ';'-separated CSV format"
        ) from exc
    warnings.warn(
        f"loading pickle {path.name}: unpickling can run arbitrary code; only do this for files you trust",
        UserWarning,
        stacklevel=3,
    )
    df = pd.read_pickle(path)
    if not isinstance(df, pd.DataFrame):
        raise GalleryError(f"{path.name} holds a {type(df).__name__}, not a DataFrame of encodings")
    missing = [c for c in HEADER if c not in df.columns]
    if missing:
        raise GalleryError(f"{path.name} lacks columns {missing}; it has {list(df.columns)}")
    return list(df[list(HEADER)].itertuples(index=False, name=None))


def _read_csv_rows(path: Path) -> list[tuple[str, str, Any, Any, Any, Any]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=";")
            header = next(reader, None)
            if header is None:
                raise GalleryError(f"encodings file {path.name} is empty")
            cols = {h.strip(): i for i, h in enumerate(header)}
            missing = [c for c in HEADER if c not in cols]
            if missing:
                raise GalleryError(
                    f"{path.name} lacks columns {missing}; expected a ';'-separated header {';'.join(HEADER)}, "
                    f"got {header!r}"
                )
            idx = [cols[c] for c in HEADER]
            rows = []
            for line, row in enumerate(reader, start=2):
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) <= max(idx):
                    raise GalleryError(
                        f"{path.name} line {line}: expected {len(header)} fields, got {len(row)}"
                    )
                rows.append(tuple(row[i] for i in idx))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GalleryError(f"cannot read encodings file {path}: {exc}") from exc
    return rows  # type: ignore[return-value]


def read_encodings(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> EncodingTable:
    """Read a GestaltMatcher-Arc encodings file.

    Args:
        path: the ``;``-separated CSV, or a pickled DataFrame (``.pkl``).
        allow_pickle: load pickles (with a warning). Off by default: unpickling a file runs code from it.

    Returns:
        The :class:`EncodingTable`.

    Raises:
        GalleryError: missing file, pickle refused, pandas missing for a pickle, missing columns,
            malformed numbers, inconsistent variants or sizes.
    """
    p = Path(path)
    if not p.is_file():
        raise GalleryError(f"encodings file {p} does not exist")
    if _is_pickle(p):
        if not allow_pickle:
            raise GalleryError(
                f"{p.name} is a pickle; gmx does not unpickle files by default because unpickling runs "
                "code from the file. If you trust it, pass allow_pickle=True (CLI: --allow-pickle), or "
                "convert it to the ';'-separated CSV format"
            )
        rows = _read_pickle_rows(p)
    else:
        rows = _read_csv_rows(p)
    return _assemble(rows, p.name)


def _fmt(vec: np.ndarray) -> str:
    # repr of the float64 value of each float32: exact, and the same text upstream's str(list) gives.
    return "[" + ", ".join(repr(float(x)) for x in np.asarray(vec, dtype=np.float64)) + "]"


def write_encodings(
    source: Gallery | EncodingTable,
    path: str | os.PathLike[str],
    *,
    model_names: Sequence[str] | None = None,
    class_conf: Sequence[np.ndarray] | None = None,
) -> Path:
    """Write embeddings as a GestaltMatcher-Arc ``;``-separated encodings CSV (atomically).

    Args:
        source: a gallery, or an :class:`EncodingTable` (e.g. built from query embeddings).
        path: destination CSV.
        model_names: name per model index (default: the table's names, else ``m0``, ``m1``, ...).
        class_conf: per variant ``(N, C_v)`` classifier outputs (default: the table's, else ``[0]``).

    Returns:
        The path written. Rows are image-major, then variant order; ``img_name`` is the image id.

    Raises:
        ValueError: an image id contains ``_`` or ``;`` (upstream readers would cut it), or the
            model names / class_conf do not fit.
    """
    if isinstance(source, Gallery):
        ids = tuple(im.image_id for im in source.images)
        names = ids
        variants, emb = source.variants, source.embeddings
        default_models: tuple[str, ...] = ()
        default_conf: tuple[np.ndarray, ...] | None = None
    else:
        ids, names = source.image_ids, source.file_names
        variants, emb = source.variants, source.embeddings
        default_models, default_conf = source.model_names, source.class_conf
    n_models = max((v.model for v in variants), default=-1) + 1
    mnames = (
        tuple(model_names)
        if model_names is not None
        else (default_models or tuple(f"m{i}" for i in range(n_models)))
    )
    if (
        len(mnames) < n_models
        or len(set(mnames)) != len(mnames)
        or any(";" in m or not m.strip() for m in mnames)
    ):
        raise ValueError(f"need {n_models} distinct model names without ';', got {list(mnames)}")
    confs = tuple(class_conf) if class_conf is not None else default_conf
    if confs is not None and (
        len(confs) != len(variants) or any(np.shape(c)[0] != len(ids) for c in confs)
    ):
        raise ValueError(f"class_conf must hold {len(variants)} arrays of {len(ids)} rows")
    for name, iid in zip(names, ids, strict=True):
        if ";" in name or "\n" in name:
            raise ValueError(f"img_name {name!r} cannot be written in a ';'-separated file")
        if image_id_from_name(name) != iid:
            raise ValueError(
                f"image id {iid!r} would be read back as {image_id_from_name(name)!r} (ids cannot contain '_')"
            )

    buf = io.StringIO()
    buf.write(";".join(HEADER) + "\n")
    for i, name in enumerate(names):
        for j, v in enumerate(variants):
            conf = "[0]" if confs is None else _fmt(confs[j][i])
            buf.write(
                f"{name};{mnames[v.model]};{int(v.flip)};{int(v.grey)};{conf};{_fmt(emb[i, j])}\n"
            )
    return atomic_write_text(path, buf.getvalue())


__all__ = [
    "HEADER",
    "EncodingTable",
    "image_id_from_name",
    "parse_float_list",
    "read_encodings",
    "write_encodings",
]
