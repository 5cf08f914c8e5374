"""Where a backbone's coarse feature-map cells sit on the 112x112 face, and how to place maps there.

Conventions: pixel ``(x, y)`` has its centre at integer coordinates, origin top-left, ``x`` to the
right (the image's left is ``x = 0``); the template is ``size x size`` (112). A coarse map is
``(..., h, w)`` with row ``r`` and column ``c``; a :class:`CellGrid` gives the pixel coordinate of the
centre of every row (``centres_y``) and column (``centres_x``).

Why not the usual geometry: an image resize (OpenCV ``INTER_LINEAR``, ``F.interpolate`` with
``align_corners=False``, pytorch-grad-cam) puts cell ``j`` of a 7x7 map at pixel ``16 j + 7.5``. In an
iResNet every stage opens with a stride-2 3x3 convolution (padding 1) and a stride-2 1x1 downsample,
so output ``o`` is centred on input ``2 o`` and, after four stages, cell ``j`` on pixel ``16 j``
(:func:`stride_grid`). Borders pull that further: a cell's receptive field is cut by the image edge
and zero padding, so its effective centre (the centroid of the input gradient) moves inward, by up
to 18 px for the outer cells of an iResNet-100. :func:`measure_cell_grid` measures those centroids
(``docs/explain.md``, "Map geometry", has the numbers) and :func:`cell_grid` caches them per backbone
object in memory and per set of weights on disk (the user cache folder).

Placement (:meth:`CellGrid.place`) is separable piecewise-linear interpolation between the cell
centres, constant beyond the outermost centres. On :func:`half_pixel_grid` it equals OpenCV's
``INTER_LINEAR`` resize exactly. :meth:`CellGrid.place_additive` is the sum-preserving variant for
additive cell terms (each cell's value is spread over the pixels with the same hat weights,
normalised to sum 1 per cell, so the pixel map sums to the cell total).

A flipped TTA variant sees the mirrored face: place its map with the backbone's grid in its own
(mirrored) frame, then mirror the pixels (:func:`place_map` with ``flip=True``); this equals placing
the column-reversed map on :meth:`CellGrid.mirrored`.
"""

from __future__ import annotations

import copy
import io
import itertools
import logging
import threading
import weakref
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from gmx._io import atomic_write_bytes, user_cache_dir
from gmx.constants import TEMPLATE_SIZE

logger = logging.getLogger(__name__)

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

#: Aligned faces (uint8 RGB, 112x112) on which :func:`measure_cell_grid` measures by default: four
#: synthetic demo faces of different syndromes (``models/demo``, image ids in the file).
PROBE_FACES_FILE = "probe_faces.npz"


@dataclass(frozen=True)
class CellGrid:
    """Pixel centres of the rows and columns of a coarse map on a ``size x size`` face.

    Attributes:
        centres_y: ``h`` pixel ``y`` coordinates, one per row, increasing.
        centres_x: ``w`` pixel ``x`` coordinates, one per column, increasing.
        size: side of the face in pixels (the template, 112).
        source: how the centres were obtained (``"measured"``, ``"stride"``, ``"half-pixel"``, and
            ``"+mirrored"`` for :meth:`mirrored`).
    """

    centres_y: tuple[float, ...]
    centres_x: tuple[float, ...]
    size: int = TEMPLATE_SIZE
    source: str = ""

    def __post_init__(self) -> None:
        cy = tuple(float(v) for v in self.centres_y)
        cx = tuple(float(v) for v in self.centres_x)
        for name, c in (("centres_y", cy), ("centres_x", cx)):
            if not c or not np.all(np.isfinite(c)) or np.any(np.diff(c) <= 0):
                raise ValueError(f"{name} must be finite and strictly increasing, got {c}")
        object.__setattr__(self, "centres_y", cy)
        object.__setattr__(self, "centres_x", cx)
        object.__setattr__(self, "size", int(self.size))

    @property
    def shape(self) -> tuple[int, int]:
        """``(h, w)`` of the coarse maps this grid places."""
        return len(self.centres_y), len(self.centres_x)

    def mirrored(self) -> CellGrid:
        """The grid of a left-right mirrored input with its columns reversed.

        Column ``c`` of the returned grid is column ``w - 1 - c`` of a map computed on the mirrored
        face, and sits at pixel ``size - 1 - centres_x[w - 1 - c]`` of the original face.
        """
        last = self.size - 1
        return CellGrid(
            self.centres_y,
            tuple(last - c for c in reversed(self.centres_x)),
            self.size,
            f"{self.source}+mirrored",
        )

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Interpolation matrices ``(size, h)`` and ``(size, w)``: pixel weights of each centre.

        Rows sum to 1; ``place(m) = Wy @ m @ Wx.T``.
        """
        return _axis_weights(self.centres_y, self.size), _axis_weights(self.centres_x, self.size)

    def place(self, coarse: ArrayOrTensor) -> ArrayOrTensor:
        """``(..., h, w)`` -> ``(..., size, size)``: values interpolated between cell centres.

        Linear in the map, so means over maps that share this grid commute with it. Returns the
        input's type (NumPy float32 or a torch tensor on the input's device); the input is not
        modified.
        """
        wy, wx = self.weights()
        return self._apply(coarse, wy, wx)

    def place_additive(self, coarse: ArrayOrTensor) -> ArrayOrTensor:
        """``(..., h, w)`` additive cell terms -> ``(..., size, size)`` pixel terms with the same sum.

        Each cell's value is spread over the pixels with its interpolation weights normalised to sum
        1, so summing the pixels inside any union of cells' supports gives back their terms, and
        the whole map sums to the sum of the cells (completeness survives the drawing).
        """
        wy, wx = self.weights()
        return self._apply(coarse, wy / wy.sum(0, keepdims=True), wx / wx.sum(0, keepdims=True))

    def _apply(self, coarse: ArrayOrTensor, wy: np.ndarray, wx: np.ndarray) -> ArrayOrTensor:
        if tuple(coarse.shape[-2:]) != self.shape:
            raise ValueError(f"map of shape {tuple(coarse.shape)} does not fit grid {self.shape}")
        if isinstance(coarse, torch.Tensor):
            ty = torch.from_numpy(wy).to(coarse.device, torch.float32)
            tx = torch.from_numpy(wx).to(coarse.device, torch.float32)
            return torch.einsum("yi,...ij,xj->...yx", ty, coarse.float(), tx)
        arr = np.asarray(coarse, np.float64)
        out = np.einsum("yi,...ij,xj->...yx", wy, arr, wx, optimize=True)
        return out.astype(np.float32)

    def cell_at(self, x: float, y: float) -> int:
        """Index ``row * w + col`` of the cell whose centre is nearest to pixel ``(x, y)``."""
        r = int(np.argmin(np.abs(np.asarray(self.centres_y) - y)))
        c = int(np.argmin(np.abs(np.asarray(self.centres_x) - x)))
        return r * len(self.centres_x) + c

    def centre(self, cell: int) -> tuple[float, float]:
        """Pixel ``(x, y)`` of the centre of cell ``row * w + col``."""
        h, w = self.shape
        if not 0 <= int(cell) < h * w:
            raise ValueError(f"cell {cell} out of range for a {h}x{w} grid")
        r, c = divmod(int(cell), w)
        return self.centres_x[c], self.centres_y[r]

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell boundaries for drawing: ``(h + 1,)`` and ``(w + 1,)`` pixel coordinates.

        A cell spans from the midpoint to its previous centre to the midpoint to its next; the outer
        boundaries are the image's edges (``-0.5`` and ``size - 0.5``).
        """

        def axis(c: tuple[float, ...]) -> np.ndarray:
            a = np.asarray(c)
            return np.concatenate([[-0.5], (a[1:] + a[:-1]) / 2, [self.size - 0.5]])

        return axis(self.centres_y), axis(self.centres_x)


def _axis_weights(centres: tuple[float, ...], size: int) -> np.ndarray:
    """``(size, n)`` hat weights of piecewise-linear interpolation, constant beyond the ends."""
    c = np.asarray(centres, np.float64)
    n = len(c)
    out = np.zeros((size, n), np.float64)
    px = np.arange(size, dtype=np.float64)
    if n == 1:
        out[:, 0] = 1.0
        return out
    clipped = np.clip(px, c[0], c[-1])
    hi = np.clip(np.searchsorted(c, clipped, side="right"), 1, n - 1)
    lo = hi - 1
    t = (clipped - c[lo]) / (c[hi] - c[lo])
    out[np.arange(size), lo] = 1.0 - t
    out[np.arange(size), hi] += t
    return out


def half_pixel_grid(shape: tuple[int, int], size: int = TEMPLATE_SIZE) -> CellGrid:
    """The geometry of an image resize: cell ``j`` of ``n`` at ``(j + 0.5) * size / n - 0.5``.

    What OpenCV ``INTER_LINEAR``, ``F.interpolate(align_corners=False)`` and pytorch-grad-cam assume;
    :meth:`CellGrid.place` on it equals those resizes. Right for maps whose cells tile the image
    (pooling windows, occlusion patches), wrong for strided convolutions.
    """
    h, w = shape
    return CellGrid(
        tuple((j + 0.5) * size / h - 0.5 for j in range(h)),
        tuple((j + 0.5) * size / w - 0.5 for j in range(w)),
        size,
        "half-pixel",
    )


def stride_grid(shape: tuple[int, int], size: int = TEMPLATE_SIZE) -> CellGrid:
    """Receptive-field centres of stride-2 convolutions with ``padding = kernel // 2``: ``s * j``.

    With stride ``s = size / n`` (iResNet: every stage halves the map with a 3x3 stride-2 conv,
    padding 1, and a 1x1 stride-2 downsample), output ``o`` is centred on input ``s * o``. This is
    the analytic centre; border truncation moves the effective centres of outer cells inward
    (:func:`measure_cell_grid`).
    """
    h, w = shape
    return CellGrid(
        tuple(j * size / h for j in range(h)),
        tuple(j * size / w for j in range(w)),
        size,
        "stride",
    )


@cache
def probe_faces() -> np.ndarray:
    """``(4, 112, 112, 3)`` uint8 RGB aligned faces used by :func:`measure_cell_grid` (read-only)."""
    import cv2

    with resources.files("gmx.encode").joinpath(PROBE_FACES_FILE).open("rb") as fh:
        data = np.load(fh)
        blob, offsets = data["webp"], data["offsets"]
    faces = []
    for a, b in itertools.pairwise(offsets):
        bgr = cv2.imdecode(np.asarray(blob[a:b]), cv2.IMREAD_COLOR)
        faces.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    out = np.stack(faces)
    out.setflags(write=False)
    return out


def _iresnet_input(faces: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32)).permute(0, 3, 1, 2)
    return (x / 255.0 - 0.5) / 0.5


def gradient_centroids(
    backbone: nn.Module, x: torch.Tensor, cells: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Centroids of ``|d ||m[:, r, c]||^2 / d x|`` (summed over input channels), one per row.

    Args:
        backbone: module with ``forward_maps(x) -> (N, C, h, w)``; not modified (gradients are
            taken with ``torch.autograd.grad``, nothing is written to ``.grad``).
        x: ``(N, 3, H, W)`` inputs, one per measured cell.
        cells: ``(N, 2)`` int ``(row, col)`` of the cell measured on each input.

    Returns:
        ``(cy, cx)``: ``(N,)`` float64 pixel coordinates of the centroids.
    """
    cells = np.asarray(cells, np.int64)
    if cells.shape != (len(x), 2):
        raise ValueError(f"need one (row, col) per input, got {cells.shape} for {len(x)} inputs")
    xx = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        maps = backbone.forward_maps(xx)
        rows = torch.arange(len(x), device=maps.device)
        sel = maps[rows, :, torch.as_tensor(cells[:, 0]), torch.as_tensor(cells[:, 1])]
        (grad,) = torch.autograd.grad((sel.float() ** 2).sum(), xx)
    mag = grad.detach().abs().sum(1).double().cpu()  # (N, H, W)
    total = mag.sum((1, 2))
    if not bool((total > 0).all()):
        raise ValueError("a measured cell has zero input gradient (degenerate probe input)")
    ys = torch.arange(mag.shape[1], dtype=torch.float64)
    xs = torch.arange(mag.shape[2], dtype=torch.float64)
    cy = (mag.sum(2) * ys).sum(1) / total
    cx = (mag.sum(1) * xs).sum(1) / total
    return cy.numpy(), cx.numpy()


def measure_cell_grid(backbone: nn.Module, faces: np.ndarray | None = None) -> CellGrid:
    """Measure the effective centre of every row and column of ``backbone.forward_maps``.

    The centre of a cell is the centroid of ``|d ||m_cell||^2 / d x|`` (its input gradient, summed
    over channels), averaged over probe faces. Rows and columns are measured on shifted diagonals:
    face ``k`` measures cells ``(i, (i + k) mod w)``, so every row and every column is measured once
    per face, on different cells, in one batched backward pass of ``len(faces) * h`` rows (the
    grid is separable: a column's centre hardly depends on the row, see ``docs/explain.md``).

    Args:
        backbone: iResNet-style module (``forward_maps``, 3x112x112 input in ``[-1, 1]``); not
            modified.
        faces: ``(K, 112, 112, 3)`` uint8 RGB aligned faces; default :func:`probe_faces`.

    Returns:
        A square ``CellGrid`` with ``source="measured"``.
    """
    if backbone.training:  # never update the caller's BatchNorm statistics
        backbone = copy.deepcopy(backbone).eval()
    faces = probe_faces() if faces is None else np.asarray(faces)
    if faces.ndim != 4 or faces.shape[1:] != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3):
        raise ValueError(f"faces must be (K, 112, 112, 3) uint8, got {faces.shape}")
    param = next(iter(backbone.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x_faces = _iresnet_input(faces).to(device, dtype)
    with torch.no_grad():
        h, w = backbone.forward_maps(x_faces[:1]).shape[-2:]
    n = max(h, w)
    k = len(faces)
    i = np.tile(np.arange(n), k)
    shift = np.repeat(np.arange(k), n)
    cells = np.stack([i % h, (i + shift) % w], axis=1)
    cy, cx = gradient_centroids(backbone, x_faces.repeat_interleave(n, 0), cells)
    ys = np.array([cy[cells[:, 0] == r].mean() for r in range(h)])
    xs = np.array([cx[cells[:, 1] == c].mean() for c in range(w)])
    return CellGrid(tuple(ys), tuple(xs), TEMPLATE_SIZE, "measured")


_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[object, CellGrid]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()

#: Version of :func:`measure_cell_grid`'s method; part of the disk cache key (bump it when the
#: measurement changes, and old entries are simply no longer found).
CELL_GRID_VERSION = 1

#: Sub-folder of :func:`gmx._io.user_cache_dir` holding measured grids, one ``<key>.npz`` each.
CELL_GRID_CACHE = "cell_grid"


def cell_grid_cache_key(backbone: nn.Module) -> str:
    """Disk-cache key of ``backbone``'s measured grid: SHA-256 over its weights fingerprint
    (:func:`gmx.encode.model.weights_fingerprint`), class, the probe faces and
    :data:`CELL_GRID_VERSION`."""
    import hashlib

    from gmx.encode.model import weights_fingerprint

    digest = hashlib.sha256()
    digest.update(f"cell_grid|v{CELL_GRID_VERSION}|{type(backbone).__qualname__}|".encode())
    digest.update(weights_fingerprint(backbone).encode())
    digest.update(probe_faces().tobytes())
    return digest.hexdigest()


def _read_cached_grid(path: Path, key: str) -> CellGrid | None:
    """The grid stored at ``path`` for ``key``, or ``None`` (missing, damaged or another key)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                raise ValueError("the entry belongs to other weights")
            return CellGrid(
                tuple(z["centres_y"].astype(np.float64).tolist()),
                tuple(z["centres_x"].astype(np.float64).tolist()),
                int(z["size"]),
                "measured",
            )
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        logger.warning(
            "ignoring a damaged cell-grid cache entry %s (%s): measuring again", path, exc
        )
        return None


def _write_cached_grid(path: Path, key: str, grid: CellGrid) -> None:
    """Store ``grid`` at ``path`` atomically; a cache that cannot be written is only logged."""
    buf = io.BytesIO()
    np.savez(
        buf,
        key=np.asarray(key),
        centres_y=np.asarray(grid.centres_y, np.float64),
        centres_x=np.asarray(grid.centres_x, np.float64),
        size=np.asarray(grid.size),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        logger.warning(
            "cannot write the cell-grid cache %s (%s); it will be measured again", path, exc
        )


def _measured_grid(backbone: nn.Module, disk_cache: bool) -> CellGrid:
    """:func:`measure_cell_grid`, through the disk cache when it is on."""
    folder = user_cache_dir() if disk_cache else None
    if folder is None:
        return measure_cell_grid(backbone)
    key = cell_grid_cache_key(backbone)
    path = folder / CELL_GRID_CACHE / f"{key}.npz"
    grid = _read_cached_grid(path, key)
    if grid is None:
        grid = measure_cell_grid(backbone)
        _write_cached_grid(path, key, grid)
    return grid


def cell_grid(
    backbone: nn.Module, shape: tuple[int, int] | None = None, *, disk_cache: bool = True
) -> CellGrid:
    """The grid of ``backbone``'s maps of ``shape`` (default: those of ``forward_maps``).

    Maps of the ``forward_maps`` shape get :func:`measure_cell_grid`: measured once per backbone
    object and weights state (cached in memory for the object's lifetime) and, with
    ``disk_cache``, once per set of weights on this machine: the grid is stored under
    :func:`gmx._io.user_cache_dir` (``cell_grid/<key>.npz``, key :func:`cell_grid_cache_key`),
    written atomically and read with ``allow_pickle=False``; a damaged entry is ignored and
    measured again. ``GMX_NO_CACHE=1`` (or ``disk_cache=False``) turns the disk cache off,
    ``GMX_CACHE_DIR`` moves it. Other shapes (an earlier layer, FullGrad's bias terms) get the
    analytic :func:`stride_grid`; ``size x size`` maps are already pixels and get the identity
    grid (centres ``0 .. size - 1``).
    """
    if shape is not None and tuple(shape) == (TEMPLATE_SIZE, TEMPLATE_SIZE):
        return identity_grid()
    from gmx.explain.prepared import state_signature  # the engine's cheap weights signature

    sig = state_signature(backbone)
    with _CACHE_LOCK:
        hit = _CACHE.get(backbone)
    if hit is not None and hit[0] == sig:
        grid = hit[1]
    else:
        grid = _measured_grid(backbone, disk_cache)
        with _CACHE_LOCK:
            _CACHE[backbone] = (sig, grid)
    if shape is None or tuple(shape) == grid.shape:
        return grid
    return stride_grid(tuple(shape))  # type: ignore[arg-type]


@cache
def identity_grid(size: int = TEMPLATE_SIZE) -> CellGrid:
    """Pixel maps: centre ``j`` at pixel ``j`` (placing is the identity)."""
    c = tuple(float(j) for j in range(size))
    return CellGrid(c, c, size, "pixels")


def place_map(coarse: ArrayOrTensor, grid: CellGrid, flip: bool = False) -> ArrayOrTensor:
    """Place ``(..., h, w)`` on the face with ``grid``, in the frame it was computed in.

    Args:
        coarse: a map computed on the face (``flip=False``) or on the mirrored face (``flip=True``,
            columns in the mirrored image's order, as the network returns them).
        grid: the backbone's grid for this map shape (:func:`cell_grid`).
        flip: the map was computed on the mirrored face: it is placed in that frame, then the
            pixels are mirrored, so the result is in the face's frame.

    Returns:
        ``(..., size, size)``, same type as ``coarse``; pixel maps (``size x size``) are only
        mirrored.
    """
    placed = coarse if grid == identity_grid(grid.size) else grid.place(coarse)
    if not flip:
        return placed
    if isinstance(placed, torch.Tensor):
        return torch.flip(placed, dims=[-1])
    return np.ascontiguousarray(np.asarray(placed)[..., ::-1])


__all__ = [
    "CellGrid",
    "cell_grid",
    "cell_grid_cache_key",
    "gradient_centroids",
    "half_pixel_grid",
    "identity_grid",
    "measure_cell_grid",
    "place_map",
    "probe_faces",
    "stride_grid",
]
