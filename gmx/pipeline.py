"""Photo -> aligned faces -> embeddings -> ranked syndromes: the whole diagnose path in one object.

:class:`Diagnoser` owns the loaded models, the gallery and a MediaPipe aligner, so that each call only
does per-photo work. It is what the app, the CLI and ``benchmarks/diagnose.py`` use.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gmx._typing import ImageU8
from gmx.align import AlignedFace, AlignmentResult, FaceAligner, load_image
from gmx.config import GmxConfig
from gmx.encode import Ensemble, LoadedModel, load_model
from gmx.gallery import Gallery, Ranking, check_compatible, load_gallery, rank

#: Most faces a :class:`Diagnoser` aligns per photo (largest first); a group photo beyond this gets a
#: note in :attr:`AlignmentResult.message`. The user (or ``--face``) picks which one is the patient.
MAX_FACES: int = 10

#: A face whose BlazeFace detection score is below this needs the user's confirmation before results
#: are shown (see :func:`face_doubts`; figures in docs/align.md).
CONFIRM_DETECTION_SCORE: float = 0.75


@dataclass(frozen=True)
class Diagnosis:
    """The answer for one photo.

    Attributes:
        alignment: every face found in the photo (largest first) or why none was found.
        face_index: which face was ranked.
        embeddings: ``(V, D)`` float32 embeddings of that face, one per model/TTA variant
            (``None`` when there is no face).
        ranking: the ranked syndromes, genes and patients (``None`` when there is no face).
        timings: seconds spent per step (decode, align, encode, rank).
        image_sha256: hash of the photo's bytes (a cache key; the photo itself is not kept).
    """

    alignment: AlignmentResult
    face_index: int
    embeddings: np.ndarray | None
    ranking: Ranking | None
    timings: Mapping[str, float] = field(default_factory=dict)
    image_sha256: str = ""

    @property
    def face(self) -> AlignedFace | None:
        """The ranked face, or ``None``."""
        faces = self.alignment.faces
        return faces[self.face_index] if self.face_index < len(faces) else None

    @property
    def ok(self) -> bool:
        """True when a face was found and ranked."""
        return self.ranking is not None

    @property
    def message(self) -> str | None:
        """Why there is no ranking, for the user."""
        if self.ok:
            return None
        n = len(self.alignment.faces)
        if n:
            return f"Face {self.face_index + 1} was asked for, but the photo has only {n} face(s)."
        return self.alignment.message or "No face found in the photo."

    @property
    def doubts(self) -> tuple[str, ...]:
        """Why the ranked face may not be a face (empty when it looks like one); see
        :func:`face_doubts`."""
        face = self.face
        return () if face is None else face_doubts(face)


def face_doubts(face: AlignedFace) -> tuple[str, ...]:
    """Reasons to ask the user whether ``face`` really is the patient's face before showing results.

    A weak detection (score below :data:`CONFIRM_DETECTION_SCORE`) is what the measured false faces
    have in common (a skull mask's eye socket: 0.55; real portraits and headshots: >= 0.8).
    """
    score = face.quality.detection_score
    if score < CONFIRM_DETECTION_SCORE:
        return (
            f"the face detector is unsure this is a face (score {score:.2f} < "
            f"{CONFIRM_DETECTION_SCORE:.2f})",
        )
    return ()


class Diagnoser:
    """Loaded models + gallery + aligner. Thread-safe: the aligner is used under a lock.

    Args:
        ensemble: the models and TTA variants.
        gallery: a gallery embedded with exactly this ensemble.
        aligner: an open :class:`~gmx.align.FaceAligner`; it is closed by :meth:`close`.
    """

    def __init__(self, ensemble: Ensemble, gallery: Gallery, aligner: FaceAligner) -> None:
        check_compatible(ensemble, gallery)
        self.ensemble = ensemble
        self.gallery = gallery
        self._aligner = aligner
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: GmxConfig, *, progress: Callable[[str], None] | None = None
    ) -> Diagnoser:
        """Load the configured models and gallery and open an aligner."""
        say = progress or (lambda _msg: None)
        models: list[LoadedModel] = []
        for path in config.model_paths:
            say(f"Loading model {Path(path).name}")
            models.append(load_model(path, device=config.device))
        ensemble = Ensemble(models, flip=config.flip, grey=config.grey, precision=config.precision)
        say(f"Loading gallery {Path(config.gallery_path).name}")
        gallery = load_gallery(config.gallery_path, expected_fingerprint=ensemble.fingerprint)
        say("Starting the face landmarker")
        aligner = FaceAligner(max_faces=MAX_FACES)
        return cls(ensemble, gallery, aligner)

    @property
    def models(self) -> Sequence[LoadedModel]:
        """The loaded models, in ensemble order."""
        return self.ensemble.models

    def align(
        self, source: bytes | str | Path | ImageU8
    ) -> tuple[AlignmentResult, dict[str, float]]:
        """Decode (unless given pixels) and align every face of a photo (up to the aligner's
        ``max_faces``, largest first)."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        rgb = source if isinstance(source, np.ndarray) else load_image(source)
        timings["decode"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with self._lock:
            alignment = self._aligner.align(rgb)
        timings["align"] = time.perf_counter() - t0
        return alignment, timings

    def rank_face(
        self, face: AlignedFace, *, min_distance: float | None = None
    ) -> tuple[np.ndarray, Ranking, dict[str, float]]:
        """Embed one aligned face with every variant and rank the gallery."""
        t0 = time.perf_counter()
        embeddings = self.ensemble.embed([face])[0]
        t1 = time.perf_counter()
        ranking = rank(embeddings, self.gallery, min_distance=min_distance)
        t2 = time.perf_counter()
        return embeddings, ranking, {"encode": t1 - t0, "rank": t2 - t1}

    def diagnose(
        self,
        source: bytes | str | Path | ImageU8,
        *,
        face_index: int = 0,
        min_distance: float | None = None,
    ) -> Diagnosis:
        """Photo (bytes, path or RGB pixels) -> :class:`Diagnosis` for one of its faces.

        Raises:
            gmx.errors.ImageLoadError: if the photo cannot be decoded.
            ValueError: if ``face_index`` is negative.
        """
        if face_index < 0:
            raise ValueError(f"face_index must be >= 0, got {face_index}")
        digest = ""
        if isinstance(source, bytes):
            digest = hashlib.sha256(source).hexdigest()
        alignment, timings = self.align(source)
        return self.diagnose_alignment(
            alignment,
            face_index=face_index,
            min_distance=min_distance,
            image_sha256=digest,
            timings=timings,
        )

    def diagnose_alignment(
        self,
        alignment: AlignmentResult,
        *,
        face_index: int = 0,
        min_distance: float | None = None,
        image_sha256: str = "",
        timings: Mapping[str, float] | None = None,
    ) -> Diagnosis:
        """:class:`Diagnosis` of one face of an already aligned photo (choosing another face of a
        group photo, or another threshold, does not align the photo again).

        Raises:
            ValueError: if ``face_index`` is negative.
        """
        if face_index < 0:
            raise ValueError(f"face_index must be >= 0, got {face_index}")
        spent = dict(timings or {})
        if face_index >= len(alignment.faces):
            return Diagnosis(alignment, face_index, None, None, spent, image_sha256)
        embeddings, ranking, more = self.rank_face(
            alignment.faces[face_index], min_distance=min_distance
        )
        embeddings.setflags(write=False)  # a diagnosis may be shared (the app keeps it in memory)
        spent.update(more)
        spent.pop("total", None)
        spent["total"] = sum(spent.values())
        return Diagnosis(alignment, face_index, embeddings, ranking, spent, image_sha256)

    def close(self) -> None:
        """Release the MediaPipe aligner."""
        self._aligner.close()

    def __enter__(self) -> Diagnoser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "CONFIRM_DETECTION_SCORE",
    "MAX_FACES",
    "Diagnoser",
    "Diagnosis",
    "check_compatible",
    "face_doubts",
]
