"""Map geometry: where coarse cells sit on the face (gmx.encode.geometry) and how the engine uses it.

The receptive-field tests measure each cell's centroid of ``|d ||m_cell||^2 / dx|`` on faces that the
library's probe set does not contain and check the drawn centres against it within 2 px.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from gmx.config import DEMO_DIR
from gmx.encode import iresnet, load_model, preprocess
from gmx.encode.geometry import (
    CellGrid,
    cell_grid,
    gradient_centroids,
    half_pixel_grid,
    measure_cell_grid,
    place_map,
    probe_faces,
    stride_grid,
)
from gmx.explain import SimilarityTarget, explain
from gmx.variants import Variant

from .helpers import gallery

DEMO_MODEL = DEMO_DIR / "gmx-demo-iresnet.pt"
DEMO_FACES = DEMO_DIR / "synth_faces.npz"
TOL_PX = 2.0


def _demo_faces(indices: list[int]) -> np.ndarray:
    with np.load(DEMO_FACES, allow_pickle=False) as z:
        blob, offsets = z["webp"].tobytes(), z["offsets"]
        out = []
        for i in indices:
            with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]])) as im:
                out.append(np.asarray(im.convert("RGB")))
    return np.stack(out)


@pytest.fixture(scope="module")
def demo_backbone() -> torch.nn.Module:
    if not DEMO_MODEL.exists():
        pytest.skip("demo model not built")
    return load_model(DEMO_MODEL, device="cpu").model.backbone


# -- placement, hand-computed --------------------------------------------------------------------


def test_place_interpolates_between_centres_and_holds_beyond() -> None:
    grid = CellGrid((2.0, 6.0), (0.0, 10.0), size=12)
    m = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    out = grid.place(m)
    assert out.shape == (12, 12) and out.dtype == np.float32
    assert out[2, 0] == 0.0 and out[2, 10] == 1.0 and out[6, 0] == 2.0 and out[6, 10] == 3.0
    assert out[4, 5] == pytest.approx(1.5)  # midway on both axes
    assert out[2, 3] == pytest.approx(0.3)  # 3/10 of the way along x
    assert out[0, 11] == 1.0  # above the first row and right of the last column: held
    assert out[11, 0] == 2.0
    np.testing.assert_array_equal(m, [[0.0, 1.0], [2.0, 3.0]])  # input untouched


def test_stride_grid_puts_cell_j_at_16j() -> None:
    grid = stride_grid((7, 7))
    assert grid.centres_x == tuple(16.0 * j for j in range(7))
    onehot = np.zeros((7, 7), np.float32)
    onehot[3, 2] = 1.0
    out = grid.place(onehot)
    assert np.unravel_index(out.argmax(), out.shape) == (48, 32)
    assert out[48, 24] == pytest.approx(0.5) and out[40, 32] == pytest.approx(0.5)
    assert out[48, 16] == 0.0 and out[48, 48] == 0.0
    _edges_y, edges_x = grid.edges()
    np.testing.assert_allclose(edges_x, [-0.5, 8, 24, 40, 56, 72, 88, 111.5])


def test_half_pixel_grid_is_the_opencv_resize() -> None:
    m = np.random.default_rng(0).standard_normal((7, 7)).astype(np.float32)
    ref = cv2.resize(m, (112, 112), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(half_pixel_grid((7, 7)).place(m), ref, atol=1e-5)
    assert half_pixel_grid((7, 7)).centres_x[3] == 55.5


def test_place_additive_keeps_the_sum_and_numpy_equals_torch() -> None:
    m = np.random.default_rng(1).standard_normal((2, 7, 7)).astype(np.float32)
    grid = CellGrid(tuple(range(10, 80, 10)), (3.0, 20, 35, 50, 64, 77, 90))
    add = grid.place_additive(m)
    np.testing.assert_allclose(add.sum((1, 2)), m.sum((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(grid.place(torch.from_numpy(m)).numpy(), grid.place(m), atol=1e-6)


def test_flipped_map_is_placed_in_its_frame_then_mirrored() -> None:
    grid = stride_grid((7, 7))
    assert grid.mirrored().centres_x == tuple(15.0 + 16 * j for j in range(7))
    m = np.random.default_rng(2).standard_normal((7, 7)).astype(np.float32)
    np.testing.assert_allclose(
        place_map(m, grid, flip=True), grid.mirrored().place(m[:, ::-1]), atol=1e-6
    )
    pixels = np.random.default_rng(3).standard_normal((112, 112)).astype(np.float32)
    np.testing.assert_array_equal(
        place_map(pixels, cell_grid(torch.nn.Identity(), (112, 112)), flip=True), pixels[:, ::-1]
    )


def test_bad_grids_and_shapes_raise() -> None:
    with pytest.raises(ValueError, match="increasing"):
        CellGrid((1.0, 1.0), (0.0, 1.0))
    with pytest.raises(ValueError, match="does not fit"):
        stride_grid((7, 7)).place(np.zeros((6, 7)))


# -- receptive-field centroids ---------------------------------------------------------------------


def _reference_centres(backbone, faces: np.ndarray, cells: list[tuple[int, int]]):
    x = preprocess(np.stack(faces)).repeat_interleave(len(cells), 0)
    cy, cx = gradient_centroids(backbone, x, np.array(cells * len(faces)))
    k = len(cells)
    return cy.reshape(-1, k).mean(0), cx.reshape(-1, k).mean(0)


def _check(grid: CellGrid, cells, cy, cx, tol: float = TOL_PX) -> None:
    for (r, c), y, x in zip(cells, cy, cx, strict=True):
        assert abs(grid.centres_y[r] - y) <= tol, f"row {r}: drawn {grid.centres_y[r]}, RF {y}"
        assert abs(grid.centres_x[c] - x) <= tol, f"col {c}: drawn {grid.centres_x[c]}, RF {x}"


@pytest.mark.slow
def test_demo_cells_are_drawn_at_their_receptive_field_centroids(demo_backbone) -> None:
    faces = _demo_faces(list(range(1700, 1700 - 97 * 8, -97)))  # 8 faces, not the probe faces
    cells = [(r, c) for r in range(7) for c in range(7)]
    cy, cx = _reference_centres(demo_backbone, faces, cells)
    grid = cell_grid(demo_backbone)
    rows = [cy[7 * r : 7 * r + 7].mean() for r in range(7)]
    cols = [cx[c::7].mean() for c in range(7)]
    _check(grid, [(j, j) for j in range(7)], rows, cols)  # every row and column within 2 px
    _check(grid, cells, cy, cx, tol=2 * TOL_PX)  # every single cell within 4 px (not separable)


def test_demo_grid_quick_check(demo_backbone) -> None:
    """Cheap version (4 faces, two diagonals): noisier reference, so 3 px; old geometry fails."""
    faces = _demo_faces([1700, 1603, 1506, 1409])
    cells = [(j, (j + s) % 7) for s in (0, 3) for j in range(7)]
    cy, cx = _reference_centres(demo_backbone, faces, cells)
    rows = [(cy[j] + cy[7 + j]) / 2 for j in range(7)]
    cols = [(cx[j] + cx[7 + (j - 3) % 7]) / 2 for j in range(7)]
    _check(cell_grid(demo_backbone), [(j, j) for j in range(7)], rows, cols, tol=1.5 * TOL_PX)
    cx = cols
    old = half_pixel_grid((7, 7))
    assert max(abs(o - c) for o, c in zip(old.centres_x, cx, strict=True)) > 8


def test_demo_flipped_cells_mapped_back_land_on_the_mirrored_grid(demo_backbone) -> None:
    faces = _demo_faces([1700, 1603, 1506, 1409])
    cells = [(3, c) for c in range(7)]
    _cy, cx = _reference_centres(demo_backbone, faces[:, :, ::-1], cells)  # the flipped variant
    mirrored = cell_grid(demo_backbone).mirrored()
    for c, x in enumerate(cx):
        assert abs(mirrored.centres_x[6 - c] - (111 - x)) <= 1.5 * TOL_PX, c  # as the quick check


@pytest.mark.slow
@pytest.mark.parametrize("depth", [50, 100])
def test_iresnet_cells_are_drawn_at_their_receptive_field_centroids(depth: int) -> None:
    torch.manual_seed(0)
    backbone = iresnet(depth).eval()
    grid = measure_cell_grid(backbone, probe_faces()[:1])  # one face keeps the CPU cost down
    faces = _demo_faces([1600]) if DEMO_FACES.exists() else probe_faces()[1:2]
    cells = [(0, 6), (1, 0), (3, 3), (5, 1), (6, 5)]  # both edges and the middle, rows and columns
    cy, cx = _reference_centres(backbone, faces, cells)
    _check(grid, cells, cy, cx)


def test_measurement_leaves_a_training_model_untouched() -> None:
    torch.manual_seed(0)
    model = iresnet((1, 1, 1, 1), widths=(8, 8, 8, 8), embedding_dim=16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measure_cell_grid(model, probe_faces()[:1])
    assert model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


# -- the engine draws with this geometry, and mirrors at pixel level ---------------------------------


CAMS = ["gradcam", "gradcam_signed", "hirescam"]


def test_engine_places_cams_with_the_backbone_grid(demo_backbone) -> None:
    face = _demo_faces([1500])[0]
    target = SimilarityTarget(gallery(512, seed=1))
    maps = explain(demo_backbone, face, target, methods=CAMS)
    grid = cell_grid(demo_backbone)
    for name in CAMS:
        assert maps[name].raw.shape == (7, 7)
        np.testing.assert_allclose(maps[name].values, grid.place(maps[name].raw), atol=1e-6)


def test_flip_variant_equals_mirrored_explanation_of_mirrored_face(demo_backbone) -> None:
    """Pixel-level flip equivalence: the flipped variant of a face is the plain variant of its
    mirror image, placed there and mirrored back (not a cell-level column swap)."""
    face = _demo_faces([1400])[0]
    target = SimilarityTarget(gallery(512, seed=2))
    methods = [*CAMS, "saliency"]
    flipped = explain(demo_backbone, face, target, [Variant(0, flip=True)], methods=methods)
    mirror = explain(demo_backbone, np.ascontiguousarray(face[:, ::-1]), target, methods=methods)
    for name in methods:
        np.testing.assert_allclose(
            flipped[name].values, mirror[name].values[:, ::-1], rtol=1e-5, atol=1e-7, err_msg=name
        )
    # With plain and flipped variants together, the average is taken over placed pixel maps, and
    # no single cell grid holds it: raw is then the pixel map.
    both = explain(
        demo_backbone,
        face,
        SimilarityTarget(np.repeat(gallery(512, seed=2), 2, axis=0)),
        [Variant(0), Variant(0, flip=True)],
        methods=methods,
    )
    plain = explain(demo_backbone, face, target, methods=methods)
    for name in methods:
        expect = (plain[name].values + flipped[name].values) / 2
        np.testing.assert_allclose(both[name].values, expect, rtol=1e-5, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(both[name].raw, both[name].values)


# --- disk cache of measured grids (issue 10, speed) -----------------------------------------------
def _tiny_backbone(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return iresnet((1, 1, 1, 1), (8, 16, 16, 32), embedding_dim=32).eval()


def _count_measures(monkeypatch) -> list[int]:
    from gmx.encode import geometry

    calls: list[int] = []
    real = geometry.measure_cell_grid

    def counting(backbone, faces=None):
        calls.append(1)
        return real(backbone, probe_faces()[:1] if faces is None else faces)

    monkeypatch.setattr(geometry, "measure_cell_grid", counting)
    return calls


def test_measured_grid_is_cached_on_disk_per_weights(tmp_path, monkeypatch) -> None:
    import copy

    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    calls = _count_measures(monkeypatch)
    first = _tiny_backbone(0)
    grid = cell_grid(first)
    entries = list((tmp_path / "cell_grid").glob("*.npz"))
    assert len(calls) == 1 and len(entries) == 1
    # Same weights in a new object (a new process, another session): read, not measured.
    assert cell_grid(copy.deepcopy(first)) == grid and len(calls) == 1
    # Other weights: measured, a second entry.
    cell_grid(_tiny_backbone(1))
    assert len(calls) == 2 and len(list((tmp_path / "cell_grid").glob("*.npz"))) == 2
    assert not list((tmp_path / "cell_grid").glob(".*tmp"))


@pytest.mark.parametrize(
    "damage", [b"", b"not an npz", b"PK\x03\x04 truncated zip", "pickle", "other key"]
)
def test_damaged_cache_entry_is_ignored_and_measured_again(
    tmp_path, monkeypatch, caplog, damage
) -> None:
    import copy

    from gmx.encode.geometry import cell_grid_cache_key

    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    calls = _count_measures(monkeypatch)
    backbone = _tiny_backbone(2)
    grid = cell_grid(backbone)
    entry = tmp_path / "cell_grid" / f"{cell_grid_cache_key(backbone)}.npz"
    if damage == "pickle":  # an object array must never be unpickled
        buf = io.BytesIO()
        np.savez(buf, key=np.array([object()], dtype=object), centres_y=0, centres_x=0, size=0)
        entry.write_bytes(buf.getvalue())
    elif damage == "other key":
        buf = io.BytesIO()
        np.savez(buf, key="x", centres_y=np.arange(7.0), centres_x=np.arange(7.0), size=112)
        entry.write_bytes(buf.getvalue())
    else:
        entry.write_bytes(damage)
    assert cell_grid(copy.deepcopy(backbone)) == grid
    assert len(calls) == 2 and "measuring again" in caplog.text
    assert cell_grid(copy.deepcopy(backbone)) == grid and len(calls) == 2  # rewritten whole


def test_disk_cache_can_be_turned_off(tmp_path, monkeypatch) -> None:
    import copy

    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GMX_NO_CACHE", "1")
    calls = _count_measures(monkeypatch)
    backbone = _tiny_backbone(3)
    cell_grid(backbone)
    cell_grid(copy.deepcopy(backbone))
    assert len(calls) == 2 and not (tmp_path / "cell_grid").exists()
    monkeypatch.delenv("GMX_NO_CACHE")
    cell_grid(copy.deepcopy(backbone), disk_cache=False)
    assert len(calls) == 3 and not (tmp_path / "cell_grid").exists()


def test_unwritable_cache_is_not_an_error(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("GMX_CACHE_DIR", str(blocker))
    calls = _count_measures(monkeypatch)
    assert cell_grid(_tiny_backbone(4)).source == "measured" and len(calls) == 1
