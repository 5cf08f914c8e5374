"""Face alignment with MediaPipe Tasks: detect (BlazeFace pyramid) -> 478-point mesh -> ArcFace warp.

Strategy (see docs/align.md):

1. BlazeFace runs on the whole photo first. With ``max_faces == 1`` the search stops at the first
   pyramid level that yields a face, so a portrait costs one detector call; finer levels (tiles)
   are only searched when the whole image gave nothing (a small face in a large photo).
   With ``max_faces > 1`` every level down to ``min_interocular_px`` is searched.
2. Each box is cropped with a margin and given to the ``FaceLandmarker`` task (IMAGE mode), which
   re-detects the face in the crop and fits the mesh; a box where no mesh fits is dropped as a
   false detection. Mesh points are mapped back to photo pixels.
3. Duplicates (the same eyes found twice) are removed; faces are sorted by box area, largest first.
4. The five ArcFace points come from the mesh, the similarity to the template is fitted by least
   squares (:func:`~gmx.align.geometry.estimate_similarity`) and the photo is warped.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - registers its exit hook before ours, see below
import logging
import threading
import weakref
import zipfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from gmx._typing import ImageU8, Points
from gmx.align.detect import (
    SEARCH_FLOOR_DIVISOR,
    Detection,
    TileDetector,
    non_max_suppression,
    pyramid_tiles,
)
from gmx.align.geometry import (
    estimate_similarity,
    gm_transform,
    invert_affine,
    rotation_to_euler,
    to_grey,
    transform_points,
    warp_to_template,
)
from gmx.align.io import load_image
from gmx.align.mesh import FACE_WIDTH_PAIR, FIVE_POINT_GROUPS, NUM_LANDMARKS
from gmx.align.results import AlignedFace, AlignmentResult, FaceQuality, readonly
from gmx.constants import ARCFACE_TEMPLATE, GM_INPUT_SIZE, TEMPLATE_SIZE
from gmx.errors import ModelLoadError

logger = logging.getLogger(__name__)

#: The MediaPipe Face Landmarker bundle shipped in the repository's ``models/`` folder.
DEFAULT_MODEL_PATH: Path = Path(__file__).resolve().parents[2] / "models" / "face_landmarker.task"

#: Files a usable ``face_landmarker.task`` bundle must contain.
_BUNDLE_MEMBERS = ("face_detector.tflite", "face_landmarks_detector.tflite")

#: A face whose eyes are closer than this (photo pixels) gets a "small face" warning.
SMALL_FACE_INTEROCULAR_PX: float = 60.0
#: ``|yaw|`` / ``|pitch|`` above these (degrees) get a warning: the frontal template no longer fits.
STRONG_YAW_DEG: float = 25.0
STRONG_PITCH_DEG: float = 25.0
#: Detector scores below this get an "uncertain detection" warning.
LOW_DETECTION_SCORE: float = 0.7
#: More than this fraction of the 112x112 crop outside the photo gets a warning.
OUTSIDE_FRACTION: float = 0.05

#: The landmarker crop is the detector box scaled by this factor about its centre.
CROP_FACTOR: float = 2.4
#: Crops are resized so their long side lies in ``[CROP_MIN_SIDE, CROP_MAX_SIDE]``.
CROP_MIN_SIDE: int = 256
CROP_MAX_SIDE: int = 768
#: Detections from tiles (finer pyramid levels) need at least this score: in a measured group
#: benchmark true faces scored >= 0.74 and the only false face (a star field) 0.61.
TILE_MIN_SCORE: float = 0.65
#: Faces from tiles must also be re-detected by BlazeFace in their own aligned 112x112 crop (padded
#: to 224) with at least this score. Measured: 121 true faces re-detected at >= 0.80, the false
#: faces that passed the tile threshold (a round suit connector, iod 13 px) at 0.38.
VERIFY_MIN_SCORE: float = 0.6
#: Two meshes are the same face when both iris centres are closer than this x interocular.
DUPLICATE_EYE_DISTANCE: float = 0.3


def _check_bundle(path: Path) -> bytes:
    """Read and sanity-check a ``face_landmarker.task`` bundle; returns the detector model bytes."""
    if not path.is_file():
        raise ModelLoadError(
            f"MediaPipe face landmarker model not found at {str(path)!r}; the repository ships it "
            "as models/face_landmarker.task (see models/README.md)."
        )
    try:
        with zipfile.ZipFile(path) as bundle:
            names = set(bundle.namelist())
            missing = [m for m in _BUNDLE_MEMBERS if m not in names]
            if missing:
                raise ModelLoadError(
                    f"{str(path)!r} is not a MediaPipe Face Landmarker bundle (missing {missing})."
                )
            return bundle.read("face_detector.tflite")
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(
            f"{str(path)!r} is not a readable MediaPipe .task bundle: {exc}"
        ) from exc


def _close_tasks(*tasks: object) -> None:
    for task in tasks:
        close = getattr(task, "close", None)
        if close is not None:
            close()


#: Aligners still open; closed at interpreter exit before MediaPipe's worker threads stop.
_OPEN_ALIGNERS: weakref.WeakSet[FaceAligner] = weakref.WeakSet()


def _close_open_aligners() -> None:
    for aligner in list(_OPEN_ALIGNERS):
        aligner.close()


# MediaPipe runs each task on a ThreadPoolExecutor, which concurrent.futures stops in threading's
# shutdown hooks, *before* `atexit` handlers. A task still open then can no longer be closed and
# MediaPipe's finalisers print tracebacks. threading's hooks run in reverse registration order,
# and this module imports concurrent.futures.thread (lazily loaded by concurrent.futures) first,
# so this hook runs before the executors stop. `threading._register_atexit` is what concurrent.futures itself uses.
_register_thread_exit = getattr(threading, "_register_atexit", None)
if _register_thread_exit is not None:
    _register_thread_exit(_close_open_aligners)


class FaceAligner:
    """Finds faces with MediaPipe and aligns them to the ArcFace template.

    Owns a MediaPipe ``FaceDetector`` and ``FaceLandmarker`` (IMAGE running mode), loaded once and
    reused for every photo. Use it as a context manager (``with FaceAligner() as aligner:``) or
    call :meth:`close` when done. Calls to :meth:`align` are serialised by a lock, so one aligner
    can be shared between threads.

    Args:
        model_path: ``face_landmarker.task`` bundle; default :data:`DEFAULT_MODEL_PATH`.
        max_faces: most faces returned. ``1`` (default) takes the fast path (largest face only,
            finer pyramid levels only when the whole photo shows no face); larger values search
            every level for small faces (group photos).
        min_interocular_px: smallest eye distance (photo pixels) the pyramid searches for; the
            search floor is also at least ``long_side / 120``.
        min_detection_confidence: BlazeFace score threshold in ``(0, 1)``.

    Raises:
        ModelLoadError: the model bundle is missing or unreadable.
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        max_faces: int = 1,
        min_interocular_px: float = 12.0,
        min_detection_confidence: float = 0.5,
    ) -> None:
        if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 1:
            raise ValueError(f"max_faces must be an int >= 1, got {max_faces!r}")
        if not (np.isfinite(min_interocular_px) and min_interocular_px > 0):
            raise ValueError(f"min_interocular_px must be > 0, got {min_interocular_px!r}")
        if not (0.0 < min_detection_confidence < 1.0):
            raise ValueError(
                f"min_detection_confidence must be in (0, 1), got {min_detection_confidence!r}"
            )
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        detector_bytes = _check_bundle(path)
        self.model_path = path
        self.max_faces = max_faces
        self.min_interocular_px = float(min_interocular_px)
        self.min_detection_confidence = float(min_detection_confidence)
        self._lock = threading.Lock()
        try:
            self._detector = vision.FaceDetector.create_from_options(
                vision.FaceDetectorOptions(
                    base_options=BaseOptions(model_asset_buffer=detector_bytes),
                    running_mode=vision.RunningMode.IMAGE,
                    min_detection_confidence=min_detection_confidence,
                )
            )
            self._landmarker = vision.FaceLandmarker.create_from_options(
                vision.FaceLandmarkerOptions(
                    base_options=BaseOptions(model_asset_path=str(path)),
                    running_mode=vision.RunningMode.IMAGE,
                    num_faces=2,
                    min_face_detection_confidence=min_detection_confidence,
                    min_face_presence_confidence=0.5,
                    output_facial_transformation_matrixes=True,
                )
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(f"MediaPipe could not load {str(path)!r}: {exc}") from exc
        self._tiles = TileDetector(self._detector)
        self._closed = False
        # Release the native tasks when the aligner is garbage-collected without close(); at
        # interpreter exit `_close_open_aligners` does it (weakref's own atexit pass is too late).
        self._finalizer = weakref.finalize(self, _close_tasks, self._landmarker, self._detector)
        self._finalizer.atexit = False
        _OPEN_ALIGNERS.add(self)

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FaceAligner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe tasks. Idempotent; :meth:`align` fails afterwards."""
        with self._lock:
            self._closed = True
            self._finalizer()
            _OPEN_ALIGNERS.discard(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # -- public API ------------------------------------------------------------------------------

    def align(self, rgb: ImageU8) -> AlignmentResult:
        """Find, landmark and align the faces of one photo.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB photo (e.g. from :func:`load_image`); not modified.

        Returns:
            :class:`AlignmentResult` with up to ``max_faces`` faces, largest first, or no face
            and a ``message`` saying why.

        Raises:
            ValueError: ``rgb`` is not an ``(H, W, 3)`` uint8 array.
            RuntimeError: the aligner was closed.
        """
        img = np.asarray(rgb)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"rgb must be an (H, W, 3) uint8 RGB array, got {img.dtype} {img.shape}"
            )
        if min(img.shape[:2]) < 1:
            raise ValueError(f"rgb is empty: shape {img.shape}")
        img = np.ascontiguousarray(img)
        height, width = img.shape[:2]
        with self._lock:
            if self._closed:
                raise RuntimeError("this FaceAligner is closed; create a new one")
            faces, n_candidates = self._find_faces(img)
        faces.sort(key=lambda f: -f.area)
        message = None
        if not faces:
            smallest = max(self.min_interocular_px, max(width, height) / SEARCH_FLOOR_DIVISOR)
            message = (
                "No face found. Use a sharp, well-lit photo of a face seen from the front, with "
                f"at least ~{smallest:.0f} px between the eyes (60+ px is best)."
            )
            if n_candidates:
                message += (
                    f" ({n_candidates} face-like region(s) were detected but no face mesh "
                    "could be fitted.)"
                )
        elif self.max_faces > 1 and len(faces) == self.max_faces and n_candidates > len(faces):
            message = (
                f"Only the {self.max_faces} largest faces were aligned; the photo may show more."
            )
        return AlignmentResult(faces=tuple(faces), image_size=(width, height), message=message)

    # -- internals -------------------------------------------------------------------------------

    def _find_faces(self, img: ImageU8) -> tuple[list[AlignedFace], int]:
        height, width = img.shape[:2]
        levels = pyramid_tiles(width, height, self.min_interocular_px)
        faces: list[AlignedFace] = []
        n_candidates = 0
        if self.max_faces == 1:
            tried: list[Detection] = []
            for tile in levels:
                dets = non_max_suppression(self._detect_level(img, tile))
                dets = [d for d in dets if not _covered(d, tried)]
                n_candidates += len(dets)
                for det in sorted(dets, key=lambda d: -d.size):
                    face = self._landmark(img, det)
                    if face is not None:
                        return [face], n_candidates
                tried.extend(dets)
            return faces, n_candidates
        dets = [d for tile in levels for d in self._detect_level(img, tile)]
        candidates = sorted(non_max_suppression(dets), key=lambda d: -d.size)
        n_candidates = len(candidates)
        for det in candidates:
            face = self._landmark(img, det)
            if face is None or any(_same_face(face, f) for f in faces):
                continue
            faces.append(face)
            if len(faces) >= self.max_faces:
                break
        return faces, n_candidates

    def _detect_level(self, img: ImageU8, tile: int) -> list[Detection]:
        dets = self._tiles.detect_level(img, tile)
        if tile < max(img.shape[:2]):
            dets = [
                d for d in dets if d.score >= max(TILE_MIN_SCORE, self.min_detection_confidence)
            ]
        return dets

    def _landmark(self, img: ImageU8, det: Detection) -> AlignedFace | None:
        """Fit the mesh in a crop around ``det``; ``None`` when the landmarker finds no face."""
        height, width = img.shape[:2]
        cx, cy = det.center
        half = det.size * CROP_FACTOR / 2
        x0, y0 = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
        x1, y1 = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        crop = img[y0:y1, x0:x1]
        long_side = max(crop.shape[:2])
        target = min(max(long_side, CROP_MIN_SIDE), CROP_MAX_SIDE)
        if target != long_side:
            s = target / long_side
            size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
            crop = cv2.resize(crop, size, interpolation=interp)
        result = self._landmarker.detect(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(crop))
        )
        if not result.face_landmarks:
            return None
        crop_w, crop_h = x1 - x0, y1 - y0
        best: tuple[float, Points, np.ndarray | None] | None = None
        for i, marks in enumerate(result.face_landmarks):
            if len(marks) != NUM_LANDMARKS:
                logger.warning("landmarker returned %d points, expected 478; skipped", len(marks))
                continue
            norm = np.array([(m.x, m.y) for m in marks], dtype=np.float64)
            # normalised [0, 1] edge coordinates -> pixel-centre coordinates of the photo
            pts = norm * (crop_w, crop_h) + (x0 - 0.5, y0 - 0.5)
            centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
            dist = float(np.hypot(centre[0] - cx, centre[1] - cy))
            matrices = result.facial_transformation_matrixes
            pose = np.asarray(matrices[i]) if matrices and i < len(matrices) else None
            if best is None or dist < best[0]:
                best = (dist, pts, pose)
        if best is None or best[0] > det.size:
            return None
        face = build_aligned_face(img, best[1], pose_matrix=best[2], detection_score=det.score)
        if det.tile < max(height, width) and self._verify_score(face) < VERIFY_MIN_SCORE:
            logger.debug("dropped a tile detection at %s: not a face in its aligned crop", det.box)
            return None
        return face

    def _verify_score(self, face: AlignedFace) -> float:
        """BlazeFace's best score on the aligned crop centred in a black 224x224 canvas."""
        canvas = np.zeros((2 * TEMPLATE_SIZE, 2 * TEMPLATE_SIZE, 3), np.uint8)
        lo = TEMPLATE_SIZE // 2
        canvas[lo : lo + TEMPLATE_SIZE, lo : lo + TEMPLATE_SIZE] = face.image
        found = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=canvas))
        return max(
            (float(d.categories[0].score) for d in found.detections if d.categories), default=0.0
        )


def _covered(det: Detection, previous: Sequence[Detection]) -> bool:
    """Whether ``det`` is (almost) a box already tried, and failed, at a coarser level."""
    return any(len(non_max_suppression([p, det], containment=1.0)) == 1 for p in previous)


def _same_face(a: AlignedFace, b: AlignedFace) -> bool:
    iod = min(a.quality.interocular_px, b.quality.interocular_px)
    d = np.linalg.norm(a.five_points[:2] - b.five_points[:2], axis=1)
    return bool(np.all(d < DUPLICATE_EYE_DISTANCE * iod))


def five_points_from_mesh(landmarks: Points) -> Points:
    """The five ArcFace points from a ``(478, 2)`` mesh, in template order.

    Image-left eye = mean of the subject's right iris (468-472), image-right eye = mean of the
    left iris (473-477), nose tip = 4, mouth corners = 61 (image left) and 291. Returns ``(5, 2)``.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks must be ({NUM_LANDMARKS}, 2), got shape {pts.shape}")
    return np.stack([pts[list(group)].mean(axis=0) for group in FIVE_POINT_GROUPS])


def build_aligned_face(
    rgb: ImageU8,
    landmarks: Points,
    *,
    pose_matrix: np.ndarray | None = None,
    detection_score: float = 1.0,
) -> AlignedFace:
    """Align one face given its mesh: five points -> similarity -> 112x112 and 100x100 crops.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB photo; not modified.
        landmarks: ``(478, 2)`` mesh points in photo pixels (pixel-centre convention).
        pose_matrix: MediaPipe ``(4, 4)`` facial transformation matrix for yaw / pitch; when
            ``None`` they are reported as ``nan``.
        detection_score: detector confidence stored in the quality record.

    Returns:
        The :class:`AlignedFace` (all arrays read-only).
    """
    img = np.asarray(rgb)
    lm = np.array(landmarks, dtype=np.float64)  # copy: the caller's array stays untouched
    five = five_points_from_mesh(lm)
    transform = estimate_similarity(five, ARCFACE_TEMPLATE)
    aligned = warp_to_template(img, transform, TEMPLATE_SIZE)
    gm = to_grey(warp_to_template(img, gm_transform(transform), GM_INPUT_SIZE))
    lm_template = transform_points(transform, lm)
    box = (
        float(lm[:, 0].min()),
        float(lm[:, 1].min()),
        float(lm[:, 0].max()),
        float(lm[:, 1].max()),
    )
    quality = _quality(
        img.shape[1], img.shape[0], lm, five, transform, pose_matrix, detection_score
    )
    return AlignedFace(
        image=readonly(aligned),
        gm_image=readonly(gm),
        transform=readonly(transform),
        landmarks_image=readonly(lm),
        landmarks_template=readonly(lm_template),
        five_points=readonly(five),
        box=box,
        quality=quality,
    )


def _outside_fraction(width: int, height: int, transform: np.ndarray, n: int = 16) -> float:
    """Fraction of the 112x112 template whose source lies outside the photo (sampled n x n)."""
    g = (np.arange(n) + 0.5) * TEMPLATE_SIZE / n - 0.5
    gx, gy = np.meshgrid(g, g)
    src = transform_points(invert_affine(transform), np.stack([gx.ravel(), gy.ravel()], axis=1))
    inside = (
        (src[:, 0] >= -0.5)
        & (src[:, 0] <= width - 0.5)
        & (src[:, 1] >= -0.5)
        & (src[:, 1] <= height - 0.5)
    )
    return float(1.0 - inside.mean())


def _quality(
    width: int,
    height: int,
    lm: Points,
    five: Points,
    transform: np.ndarray,
    pose_matrix: np.ndarray | None,
    detection_score: float,
) -> FaceQuality:
    eye_vec = five[1] - five[0]
    iod = float(np.hypot(*eye_vec))
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    face_width = float(np.linalg.norm(lm[FACE_WIDTH_PAIR[1]] - lm[FACE_WIDTH_PAIR[0]]))
    yaw = pitch = float("nan")
    if pose_matrix is not None:
        yaw, pitch, _ = rotation_to_euler(pose_matrix)
    notes: list[str] = []
    if iod < SMALL_FACE_INTEROCULAR_PX:
        notes.append(
            f"small face: {iod:.0f} px between the eyes (< {SMALL_FACE_INTEROCULAR_PX:.0f} px); "
            "fine detail is limited"
        )
    if abs(yaw) > STRONG_YAW_DEG:
        side = "right" if yaw > 0 else "left"
        notes.append(f"strong yaw: head turned {abs(yaw):.0f}° to the image {side}")
    if abs(pitch) > STRONG_PITCH_DEG:
        notes.append(f"strong pitch: head tilted {'up' if pitch > 0 else 'down'} {abs(pitch):.0f}°")
    if detection_score < LOW_DETECTION_SCORE:
        notes.append(f"uncertain detection (score {detection_score:.2f})")
    outside = _outside_fraction(width, height, transform)
    if outside > OUTSIDE_FRACTION:
        notes.append(f"face partly outside the photo ({outside:.0%} of the crop is black border)")
    return FaceQuality(
        face_width_px=face_width,
        interocular_px=iod,
        yaw_deg=float(yaw),
        roll_deg=roll,
        pitch_deg=float(pitch),
        detection_score=float(detection_score),
        warnings=tuple(notes),
    )


def align_image(
    source: bytes | str | Path,
    *,
    model_path: str | Path | None = None,
    max_faces: int = 1,
    max_pixels: int | None = None,
) -> AlignmentResult:
    """Load a photo and align its faces with a fresh :class:`FaceAligner` (convenience).

    For many photos create one :class:`FaceAligner` and reuse it (models load once).

    Args:
        source: encoded photo bytes or a path.
        model_path: see :class:`FaceAligner`.
        max_faces: see :class:`FaceAligner`.
        max_pixels: see :func:`load_image` (default its default).

    Raises:
        ImageLoadError: the photo cannot be used (see :func:`load_image`).
    """
    rgb = load_image(source) if max_pixels is None else load_image(source, max_pixels=max_pixels)
    with FaceAligner(model_path, max_faces=max_faces) as aligner:
        return aligner.align(rgb)


__all__ = [
    "DEFAULT_MODEL_PATH",
    "FaceAligner",
    "align_image",
    "build_aligned_face",
    "five_points_from_mesh",
]
