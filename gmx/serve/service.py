"""The service's work, without HTTP: photo bytes -> GestaltMatcher-Arc-shaped answers.

:class:`GmxService` wraps a :class:`~gmx.pipeline.Diagnoser` for many concurrent requests:

* decoding and alignment (MediaPipe) run in one thread of their own (one landmarker pass at a time),
  encoding in one micro-batching thread per model
  (:class:`~gmx.serve.batching.EnsembleBatcher`), so the alignment of the next photos overlaps the
  forward passes of the previous ones and faces that arrive together share one forward pass;
* with ``batching=False`` every request runs start to finish in one worker thread, one at a time
  (GestaltMatcher-Arc's service behaves so; the baseline of ``benchmarks/serve.py``);
* admission control (503 beyond ``max_pending``), a per-request deadline (504) and errors as
  :class:`~gmx.serve.errors.ServiceError` values with their HTTP status.

Nothing a client sends is written to disk: photos are decoded from memory and dropped with the
request; only their SHA-256 appears in explanation provenance.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from gmx import __version__
from gmx.align import DEFAULT_MAX_PIXELS, AlignmentResult, load_image
from gmx.errors import ImageLoadError, ImageTooLargeError
from gmx.gallery import rank
from gmx.pipeline import Diagnoser, Diagnosis
from gmx.report import DEFAULT_TOP_K
from gmx.report.cli import DEFAULT_MAP_ROWS, DEFAULT_REPORT_METHODS
from gmx.serve.answers import diagnosis_json, ranking_json
from gmx.serve.batching import EnsembleBatcher
from gmx.serve.errors import BadRequest, NoFace, Overloaded, Timeout, TooLarge
from gmx.serve.settings import ServeSettings

log = logging.getLogger(__name__)

X = TypeVar("X")

#: Case id of a request that names none (GestaltMatcher-Arc's encoder calls its input so).
DEFAULT_CASE_ID = "input"
#: Seconds a client is asked to wait after a 503.
RETRY_AFTER_S = 1
#: Methods ``/explain`` computes when none are named (fast ones: about a second on the demo).
DEFAULT_EXPLAIN_METHODS: tuple[str, ...] = ("saliency", "gradcam")
ExplainFormat = Literal["npz", "png"]
EXPLAIN_MEDIA_TYPES: dict[str, str] = {"png": "image/png", "npz": "application/octet-stream"}
Stage = Literal["align", "embed", "rank"]
ReportFormat = Literal["pdf", "html"]
REPORT_MEDIA_TYPES: dict[str, str] = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def decode_base64(text: str) -> bytes:
    """The bytes of a base64 photo (standard alphabet; whitespace and a ``data:...;base64,`` prefix
    are accepted, as clients produce them).

    Raises:
        BadRequest: if the text is empty or not base64.
    """
    body = text.strip()
    if body.startswith("data:") and "," in body:
        body = body.split(",", 1)[1]
    body = "".join(body.split())
    if not body:
        raise BadRequest("The field 'img' is empty; send the photo's bytes as base64.")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(
            "The field 'img' is not valid base64; send the photo's bytes base64-encoded "
            "(e.g. base64.b64encode(open(path, 'rb').read()).decode())."
        ) from exc


@dataclass(frozen=True)
class ExplainOptions:
    """What ``/explain`` computes and returns.

    Attributes:
        methods: registry names (:func:`gmx.explain.list_methods`).
        top_k: syndromes to explain (rows).
        target: ``similarity``, ``logit`` or ``contrast`` (:data:`gmx.panel.TARGET_LABELS`).
        all_variants: average over every model/TTA variant (else model 0, unflipped colour).
        fmt: ``npz`` (raw maps + JSON index + provenance) or ``png`` (labelled grid).
        window, stride: occlusion patch and step (pixels of the 112 face).
        ig_steps: integrated-gradients steps.
    """

    methods: tuple[str, ...] = DEFAULT_EXPLAIN_METHODS
    top_k: int = 3
    target: str = "similarity"
    all_variants: bool = False
    fmt: ExplainFormat = "png"
    window: int = 10
    stride: int = 5
    ig_steps: int = 32


@dataclass(frozen=True)
class ExplainAnswer:
    """A computed explanation file.

    Attributes:
        content: the ``.npz`` or PNG bytes.
        media_type: its MIME type.
        filename: a suggested file name.
        provenance: models, gallery, photo hash, face, variants, target, methods (also inside the
            file).
    """

    content: bytes
    media_type: str
    filename: str
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportOptions:
    """What ``/report`` puts in the case report (:func:`gmx.report.build_report`).

    Attributes:
        fmt: ``pdf`` or ``html``.
        methods: explanation methods drawn (empty: no maps); default as ``gmx report``.
        top_k: syndromes and genes listed.
        rows: top syndromes explained by the maps (at most ``top_k``).
        include_face: put the aligned face in the report (default: no pixel of the face).
        hpo: HPO term ids confirmed present; absent_hpo: confirmed absent (left out).
    """

    fmt: ReportFormat = "pdf"
    methods: tuple[str, ...] = DEFAULT_REPORT_METHODS
    top_k: int = DEFAULT_TOP_K
    rows: int = DEFAULT_MAP_ROWS
    include_face: bool = False
    hpo: tuple[str, ...] = ()
    absent_hpo: tuple[str, ...] = ()


class GmxService:
    """Concurrent, batched access to one :class:`~gmx.pipeline.Diagnoser`.

    Args:
        diagnoser: loaded models, gallery and aligner (shared, never modified; not closed here).
        settings: limits and the batching switch.
        demo: the models and gallery are the synthetic demo (answers say so).
        gallery_file: the gallery's file (its recorded metadata SHA-256 goes into case reports).
    """

    def __init__(
        self,
        diagnoser: Diagnoser,
        settings: ServeSettings,
        *,
        demo: bool = False,
        gallery_file: Path | None = None,
    ) -> None:
        self.diagnoser = diagnoser
        self.settings = settings
        self.demo = demo
        self.gallery_file = gallery_file
        self.started = time.time()
        self._align_pool = ThreadPoolExecutor(1, thread_name_prefix="gmx-align")
        self._serial_pool = ThreadPoolExecutor(1, thread_name_prefix="gmx-serial")
        self._explain_pool = ThreadPoolExecutor(1, thread_name_prefix="gmx-explain")
        self.max_batch = settings.batch_size_for(diagnoser.models[0].device.type)
        self._batcher = (
            EnsembleBatcher(
                diagnoser.ensemble,
                max_batch=self.max_batch,
                window_s=settings.batch_window_ms / 1000,
            )
            if settings.batching
            else None
        )
        self._pending = 0
        self._explain_pending = 0
        self._lock = threading.Lock()
        self.answered: Counter[int] = Counter()

    # ------------------------------------------------------------------ admission and deadline
    @contextlib.asynccontextmanager
    async def _admitted(self, *, explain: bool = False) -> AsyncIterator[None]:
        limit = self.settings.max_explain_pending if explain else self.settings.max_pending
        with self._lock:
            busy = self._explain_pending if explain else self._pending
            if busy >= limit:
                raise Overloaded(
                    f"The service is busy ({busy} {'explanations' if explain else 'requests'} "
                    f"in progress, the limit is {limit}); try again in a moment.",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            if explain:
                self._explain_pending += 1
            else:
                self._pending += 1
        try:
            yield
        finally:
            with self._lock:
                if explain:
                    self._explain_pending -= 1
                else:
                    self._pending -= 1

    async def _within(self, work: Awaitable[X], seconds: float, what: str) -> X:
        try:
            return await asyncio.wait_for(work, seconds)
        except TimeoutError:
            raise Timeout(
                f"The {what} took longer than the service's limit of {seconds:g} s and was "
                "abandoned; try again later or ask the administrator to raise the limit."
            ) from None

    def _alone(self) -> bool:
        """True when this is the only request in progress and there is one model: nothing to
        batch, overlap or run side by side, so the thread hops would only cost (measured on the
        demo at 1 client: p50 181 ms one-at-a-time, 248 ms through the batchers)."""
        if len(self.diagnoser.models) > 1:
            return False
        with self._lock:
            return self._pending + self._explain_pending <= 1

    # ------------------------------------------------------------------------------ pipeline
    def _decode(self, data: bytes) -> np.ndarray:
        try:
            if self.settings.max_pixels is None:
                return load_image(data)
            return load_image(data, max_pixels=self.settings.max_pixels)
        except ImageTooLargeError as exc:
            raise TooLarge(str(exc)) from exc
        except ImageLoadError as exc:
            raise BadRequest(str(exc)) from exc

    def _align(self, data: bytes) -> tuple[AlignmentResult, dict[str, float]]:
        """Decode (with the pixel limit) and align; one thread hop for both (a hop costs tens of
        milliseconds on a loaded box)."""
        t0 = time.perf_counter()
        rgb = self._decode(data)
        decoded = time.perf_counter() - t0
        alignment, timings = self.diagnoser.align(rgb)
        timings["decode"] = decoded
        return alignment, timings

    def _serial(
        self,
        data: bytes,
        face_index: int,
        stage: Stage,
        min_distance: float | None,
        hand_off: bool = False,
    ):
        """The whole request in one thread (``batching=False``, or a request that is alone).

        With ``hand_off`` (the batched server, on the aligner's thread) the request stops after
        its alignment (no embeddings, no ranking) unless it is still alone then (:meth:`_alone`):
        a request admitted meanwhile must not wait for this one's encoding and ranking on the
        aligner's thread. Deciding before the alignment made the first request of every burst
        hold the aligner for its whole pipeline while the others queued behind it: the demo's
        4-client p95 was 1.6-2.0x a fair queue's (``benchmarks/serve.py``).
        """
        alignment, timings = self._align(data)
        face = _face_or_raise(alignment, face_index)
        if stage == "align" or (hand_off and not self._alone()):
            return alignment, None, None, timings
        embeddings, ranking, more = self.diagnoser.rank_face(face, min_distance=min_distance)
        timings.update(more)
        return alignment, embeddings, ranking, timings

    async def diagnose(
        self,
        data: bytes,
        *,
        face_index: int = 0,
        min_distance: float | None = None,
        stage: Stage = "rank",
    ) -> Diagnosis:
        """Photo bytes -> :class:`~gmx.pipeline.Diagnosis` (up to ``stage``), identical to
        ``Diagnoser.diagnose`` (no admission control or deadline: see the endpoint methods).

        Raises:
            BadRequest: unreadable photo. TooLarge: too many pixels. NoFace: no face
                ``face_index``.
        """
        digest = hashlib.sha256(data).hexdigest()
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        if self._batcher is None:
            alignment, embeddings, ranking, spent = await loop.run_in_executor(
                self._serial_pool, self._serial, data, face_index, stage, min_distance
            )
            spent["total"] = time.perf_counter() - t0  # includes the wait for its turn
            return Diagnosis(alignment, face_index, embeddings, ranking, spent, digest)
        # On the aligner's thread (the landmarker runs one pass at a time); a request that is
        # still alone after its alignment finishes there, in one thread hop (see _alone, _serial)
        alignment, embeddings, ranking, timings = await loop.run_in_executor(
            self._align_pool, self._serial, data, face_index, stage, min_distance, True
        )
        if stage == "align" or ranking is not None:
            timings["total"] = time.perf_counter() - t0  # includes the wait for its turn
            return Diagnosis(alignment, face_index, embeddings, ranking, timings, digest)
        face = alignment.faces[face_index]  # _serial checked it
        t1 = time.perf_counter()
        futures = self._batcher.submit(face)
        parts = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        embeddings = self._batcher.join(parts)
        embeddings.setflags(write=False)
        timings["encode"] = time.perf_counter() - t1
        if stage == "rank":
            t1 = time.perf_counter()
            ranking = await loop.run_in_executor(
                None,
                lambda: rank(embeddings, self.diagnoser.gallery, min_distance=min_distance),
            )
            timings["rank"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0  # includes the waits for the aligner and batch
        return Diagnosis(alignment, face_index, embeddings, ranking, timings, digest)

    # ---------------------------------------------------------------------------- endpoints
    async def predict(
        self,
        data: bytes,
        *,
        case_id: str = DEFAULT_CASE_ID,
        face_index: int = 0,
        top_k: int | None = None,
        min_distance: float | None = None,
    ) -> dict[str, Any]:
        """GestaltMatcher-Arc's ``/predict`` answer (:func:`gmx.gallery.to_service_json`) with the
        gallery's calibration, plus the faces found and timings under ``gmx``
        (:func:`gmx.serve.answers.diagnosis_json`)."""
        async with self._admitted():
            d = await self._within(
                self.diagnose(data, face_index=face_index, min_distance=min_distance),
                self.settings.timeout_s,
                "prediction",
            )
        return self.service_json(d, case_id=case_id, top_k=top_k)

    def service_json(
        self, d: Diagnosis, *, case_id: str = DEFAULT_CASE_ID, top_k: int | None = None
    ) -> dict[str, Any]:
        """The ``/predict`` JSON of a finished diagnosis (:func:`gmx.serve.answers.diagnosis_json`,
        as ``gmx predict`` writes it)."""
        if d.ranking is None or d.face is None:
            raise NoFace(d.message or "No face found in the photo.")
        return diagnosis_json(d, self.diagnoser, case_id=case_id, top_k=top_k, demo=self.demo)

    async def encode(
        self, data: bytes, *, case_id: str = DEFAULT_CASE_ID, face_index: int = 0
    ) -> dict[str, Any]:
        """GestaltMatcher-Arc's ``/encode`` answer: ``{"encodings": {column: {row: value}}}`` (a
        pandas ``DataFrame.to_dict()`` of ``img_name, model, flip, gray, class_conf,
        representations``), one row per model/TTA variant in ensemble order. ``class_conf`` holds
        the classifier's logits of that variant (``[0]`` for a model without a classifier, as the
        service writes for its ONNX model)."""
        async with self._admitted():
            d = await self._within(
                self.diagnose(data, face_index=face_index, stage="embed"),
                self.settings.timeout_s,
                "encoding",
            )
        assert d.embeddings is not None  # stage "embed" always embeds (or raises NoFace)
        return {"encodings": encodings_table(self.diagnoser, d.embeddings, case_id)}

    async def predict_encoding(
        self, encodings: Any, *, top_k: int | None = None, min_distance: float | None = None
    ) -> dict[str, Any]:
        """GestaltMatcher-Arc's ``/predict_encoding``: the ``/predict`` answer for embeddings a
        client computed itself (one row per model/TTA variant, as ``/encode`` returns them).

        Raises:
            BadRequest: rows that do not match this service's models and variants.
        """
        query, case_id = embeddings_from_table(self.diagnoser, encodings)
        async with self._admitted():
            loop = asyncio.get_running_loop()
            try:
                ranking = await self._within(
                    loop.run_in_executor(
                        None,
                        lambda: rank(query, self.diagnoser.gallery, min_distance=min_distance),
                    ),
                    self.settings.timeout_s,
                    "prediction",
                )
            except ValueError as exc:
                raise BadRequest(f"The encodings cannot be ranked: {exc}") from exc
        return ranking_json(ranking, self.diagnoser, case_id=case_id, top_k=top_k, demo=self.demo)

    async def crop(self, data: bytes, *, face_index: int = 0) -> dict[str, Any]:
        """GestaltMatcher-Arc's ``/crop`` answer: ``{"crop": base64 PNG}`` of the aligned
        112x112 face (RGB)."""
        from gmx.viz import to_png_bytes

        async with self._admitted():
            d = await self._within(
                self.diagnose(data, face_index=face_index, stage="align"),
                self.settings.timeout_s,
                "crop",
            )
        assert d.face is not None
        return {"crop": base64.b64encode(to_png_bytes(d.face.image)).decode("ascii")}

    async def explain(
        self, data: bytes, options: ExplainOptions, *, case_id: str = DEFAULT_CASE_ID,
        face_index: int = 0,
    ) -> ExplainAnswer:  # fmt: skip
        """Attribution maps of the top-k syndromes (:mod:`gmx.explain`) as a labelled PNG grid
        (:func:`gmx.panel.grid_png`) or an ``.npz`` (:func:`gmx.panel.maps_npz`), with provenance.

        Raises:
            BadRequest: unknown method or target, or nothing to explain (e.g. logit target and
                no classifier class among the top syndromes).
        """
        if not options.methods:
            raise BadRequest("Name at least one explanation method.")
        _check_methods(options.methods)
        if options.fmt not in EXPLAIN_MEDIA_TYPES:
            raise BadRequest(f"format must be one of {sorted(EXPLAIN_MEDIA_TYPES)}.")
        return await self._explained(
            data,
            face_index,
            "explanation",
            lambda d, stop: self._explain_maps(d, options, case_id, stop),
        )

    async def _explained(
        self,
        data: bytes,
        face_index: int,
        what: str,
        build: Callable[[Diagnosis, threading.Event], ExplainAnswer],
    ) -> ExplainAnswer:
        """The one path of ``/explain`` and ``/report``: admitted as an explanation, the photo
        diagnosed, ``build(diagnosis, stop)`` run on the explanation thread, all within
        ``explain_timeout_s``; an abandoned build stops between batches (``stop`` is set)."""
        async with self._admitted(explain=True):
            stop = threading.Event()

            async def run() -> ExplainAnswer:
                d = await self.diagnose(data, face_index=face_index)
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._explain_pool, build, d, stop)

            try:
                return await self._within(run(), self.settings.explain_timeout_s, what)
            finally:
                stop.set()

    def _maps(
        self,
        d: Diagnosis,
        rows: Sequence[Any],
        variants: Sequence[Any],
        methods: Sequence[str],
        stop: threading.Event,
        stopped: str,
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], ...]:
        """Attribution maps of ``rows`` (panel rows) on the diagnosed face, shared by ``/explain``
        and ``/report``: a computation stopped by ``stop`` is a :class:`Timeout` saying
        ``stopped``, a refused parameter a :class:`BadRequest`."""
        from gmx.explain import ExplanationCancelled, explain_targets

        assert d.face is not None  # diagnose() raises NoFace otherwise
        try:
            return explain_targets(
                [m.model for m in self.diagnoser.models],
                d.face.image,
                [r.target for r in rows],
                variants,
                methods=list(methods),
                params=params,
                should_stop=stop,
            )
        except ExplanationCancelled:
            raise Timeout(stopped) from None
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc

    def _explain_maps(
        self, d: Diagnosis, options: ExplainOptions, case_id: str, stop: threading.Event
    ) -> ExplainAnswer:
        from gmx.panel import PanelRequest, explanation_provenance, grid_png, maps_npz, panel_rows

        assert d.ranking is not None and d.face is not None
        try:
            request = PanelRequest(
                n_rows=options.top_k,
                target=options.target,  # type: ignore[arg-type]
                all_variants=options.all_variants,
                methods=options.methods,
                window=options.window,
                stride=options.stride,
                ig_steps=options.ig_steps,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        diag = self.diagnoser
        variants = list(
            diag.ensemble.variants if options.all_variants else diag.ensemble.variants[:1]
        )
        rows, _skipped = panel_rows(
            request.target, d.ranking, diag.gallery, variants, diag.models[0].card.classes,
            request.n_rows,
        )  # fmt: skip
        if not rows:
            raise BadRequest(
                "The classifier knows none of the top syndromes; use the similarity target."
                if request.target == "logit"
                else "A contrast needs two syndromes in the ranking; use the similarity target."
            )
        params = {m: p for m, p in request.params.items() if m in options.methods}
        stopped = "The explanation was stopped (time limit)."
        grid = self._maps(d, rows, variants, options.methods, stop, stopped, params)
        provenance = explanation_provenance(
            d, diag, variants, request.target, case_id=case_id, methods=options.methods, rows=rows
        )
        if options.fmt == "png":
            content = grid_png(
                d.face.image, rows, grid, list(options.methods), scale_mode=request.share,
                sign_mode=request.sign, palette=request.colours, opacity=request.opacity,
                demo=self.demo, provenance=provenance,
            )  # fmt: skip
        else:
            content = maps_npz(rows, grid, provenance=provenance, demo=self.demo)
        return ExplainAnswer(
            content,
            EXPLAIN_MEDIA_TYPES[options.fmt],
            f"gmx_explain_{_safe_name(case_id)}.{options.fmt}",
            {**provenance, "demo": self.demo},
        )

    async def report(
        self, data: bytes, options: ReportOptions, *, case_id: str | None = None,
        face_index: int = 0,
    ) -> ExplainAnswer:  # fmt: skip
        """The case report of the photo (:mod:`gmx.report`: top-k, calibrated statements, genes,
        HPO features, maps, provenance) as PDF or HTML bytes, built in memory; admitted and timed
        as ``/explain`` (its maps are explanations). ``case_id`` defaults to ``case-<8 hex digits
        of the photo's SHA-256>`` as ``gmx report``.

        Raises:
            BadRequest: unknown format or method, a bad HPO id, ``top_k``/``rows`` below 1.
        """
        from gmx.hpo import HPO_ID_PATTERN

        if options.fmt not in REPORT_MEDIA_TYPES:
            raise BadRequest(f"format must be one of {sorted(REPORT_MEDIA_TYPES)}.")
        _check_methods(options.methods, "an empty list: a report without maps")
        bad = [h for h in (*options.hpo, *options.absent_hpo) if not HPO_ID_PATTERN.match(h)]
        if bad:
            raise BadRequest(f"Not HPO term ids (HP: and seven digits): {', '.join(bad)}.")
        if options.top_k < 1 or options.rows < 1:
            raise BadRequest("top_k and rows must be at least 1.")
        return await self._explained(
            data,
            face_index,
            "case report",
            lambda d, stop: self._report_bytes(d, options, case_id, stop),
        )

    def _report_bytes(
        self, d: Diagnosis, options: ReportOptions, case_id: str | None, stop: threading.Event
    ) -> ExplainAnswer:
        from gmx.gallery import FeatureChoices
        from gmx.panel import panel_rows
        from gmx.report import ReportMaps, build_report, render

        assert d.ranking is not None and d.face is not None
        diag = self.diagnoser
        case = case_id or f"case-{d.image_sha256[:8]}"
        maps = None
        if options.methods:
            variants = list(diag.ensemble.variants)
            rows, _ = panel_rows(
                "similarity", d.ranking, diag.gallery, variants, None,
                min(options.rows, options.top_k),
            )  # fmt: skip
            stopped = "The case report's maps were stopped (time limit)."
            grid = self._maps(d, rows, variants, options.methods, stop, stopped)
            maps = ReportMaps(rows, grid, tuple(options.methods))
        try:
            report = build_report(
                d,
                diag.ensemble,
                diag.gallery,
                case_id=case,
                top_k=options.top_k,
                choices=FeatureChoices(options.hpo, options.absent_hpo),
                maps=maps,
                include_face=options.include_face,
                demo=self.demo,
                gallery_file=self.gallery_file,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        provenance = {label: text for label, text in report.provenance.items()}
        return ExplainAnswer(
            render(report, options.fmt),
            REPORT_MEDIA_TYPES[options.fmt],
            f"gmx_report_{_safe_name(case)}.{options.fmt}",
            {"case_id": case, **provenance, "demo": self.demo},
        )

    def status(self) -> dict[str, Any]:
        """GestaltMatcher-Arc's ``/status`` (``{"status": "running"}``) plus what is loaded."""
        diag = self.diagnoser
        batching: dict[str, Any] = {"enabled": self._batcher is not None}
        if self._batcher is not None:
            batching.update(
                max_batch=self.max_batch,
                window_ms=self.settings.batch_window_ms,
                per_model=[
                    {"batches": s.batches, "faces": s.items, "largest": s.largest}
                    for s in self._batcher.stats
                ],
            )
        with self._lock:
            pending, explaining = self._pending, self._explain_pending
        return {
            "status": "running",
            "gmx": {
                "version": __version__,
                "demo": self.demo,
                "models": [f"{m.card.name} {m.fingerprint[:12]}" for m in diag.models],
                "variants": [v.label for v in diag.ensemble.variants],
                "gallery": {"name": diag.gallery.name, "version": diag.gallery.version},
                "pending": pending,
                "explaining": explaining,
                "limits": {
                    "max_body_bytes": self.settings.max_body_bytes,
                    "max_pixels": self.settings.max_pixels or DEFAULT_MAX_PIXELS,
                    "timeout_s": self.settings.timeout_s,
                    "max_pending": self.settings.max_pending,
                },
                "batching": batching,
                "uptime_s": round(time.time() - self.started, 1),
            },
        }

    def close(self) -> None:
        """Stop the worker threads (queued work finishes first); the diagnoser stays open."""
        if self._batcher is not None:
            self._batcher.close()
        for pool in (self._align_pool, self._serial_pool, self._explain_pool):
            pool.shutdown(wait=True, cancel_futures=True)


def _face_or_raise(alignment: AlignmentResult, face_index: int):
    n = len(alignment.faces)
    if face_index < n:
        return alignment.faces[face_index]
    if n:
        raise NoFace(
            f"Face {face_index} was asked for (faces are numbered from 0, largest first), but "
            f"the photo has only {n} face(s)."
        )
    raise NoFace(alignment.message or "No face found in the photo.")


def encodings_table(diagnoser: Diagnoser, embeddings: np.ndarray, img_name: str) -> dict[str, Any]:
    """GestaltMatcher-Arc's encodings DataFrame as ``DataFrame.to_dict()`` gives it (column ->
    row number as a string -> value), for the ``(V, D)`` embeddings of one face."""
    import torch

    variants = diagnoser.ensemble.variants
    columns: dict[str, dict[str, Any]] = {
        c: {} for c in ("img_name", "model", "flip", "gray", "class_conf", "representations")
    }
    for row, (v, emb) in enumerate(zip(variants, embeddings, strict=True)):
        classifier = diagnoser.models[v.model].model.classifier
        conf: list[float] = [0]
        if classifier is not None:
            with torch.inference_mode():
                x = torch.from_numpy(np.array(emb, dtype=np.float32)[None])
                conf = classifier(x.to(classifier.weight.device))[0].float().cpu().tolist()
        key = str(row)
        columns["img_name"][key] = img_name
        columns["model"][key] = f"m{v.model}"
        columns["flip"][key] = int(v.flip)
        columns["gray"][key] = int(v.grey)
        columns["class_conf"][key] = conf
        columns["representations"][key] = [float(x) for x in emb]
    return columns


def embeddings_from_table(diagnoser: Diagnoser, table: Any) -> tuple[np.ndarray, str]:
    """``(V, D)`` float32 query embeddings and the case id from GestaltMatcher-Arc's encodings: a
    list of row records (``DataFrame.to_dict("records")``, what its ``send_encoding_api.py``
    sends) or the column mapping ``/encode`` returns; rows are matched to the ensemble's variants
    by ``model`` (``m0``, ``m1``, ...), ``flip`` and ``gray``, in any order.

    Raises:
        BadRequest: missing columns, several cases, a variant missing or given twice, or a
            representation of the wrong length or not finite.
    """
    if isinstance(table, dict):
        columns = {k: v for k, v in table.items() if isinstance(v, dict)}
        if len(columns) != len(table):
            raise BadRequest("encodings given as columns must map each column to {row: value}.")
        keys = sorted({r for col in columns.values() for r in col}, key=str)
        rows = [{c: columns[c].get(r) for c in columns} for r in keys]
    elif isinstance(table, list) and all(isinstance(r, dict) for r in table):
        rows = table
    else:
        raise BadRequest("encodings must be a list of rows or the mapping /encode returns.")
    need = {"img_name", "model", "flip", "gray", "representations"}
    if not rows or any(need - set(r) for r in rows):
        raise BadRequest(f"every encodings row needs the fields {sorted(need)}.")
    names = {str(r["img_name"]) for r in rows}
    if len(names) != 1:
        raise BadRequest("Send the encodings of one case per request (one img_name).")
    variants = diagnoser.ensemble.variants
    dim = diagnoser.ensemble.embedding_dim
    index = {(f"m{v.model}", v.flip, v.grey): i for i, v in enumerate(variants)}
    query = np.full((len(variants), dim), np.nan, dtype=np.float32)
    seen: set[int] = set()
    for r in rows:
        try:
            key = (str(r["model"]), bool(int(r["flip"])), bool(int(r["gray"])))
            rep = np.asarray(r["representations"], dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"an encodings row is malformed ({exc}).") from exc
        if key not in index:
            raise BadRequest(
                f"no variant model={key[0]} flip={int(key[1])} gray={int(key[2])} in this "
                f"service's ensemble ({', '.join(v.label for v in variants)})."
            )
        i = index[key]
        if i in seen:
            raise BadRequest(f"the variant {variants[i].label} is given twice.")
        if rep.shape != (dim,) or not np.isfinite(rep).all():
            raise BadRequest(f"each representation must be {dim} finite numbers.")
        seen.add(i)
        query[i] = rep
    missing = [variants[i].label for i in range(len(variants)) if i not in seen]
    if missing:
        raise BadRequest(f"the encodings lack the variants {', '.join(missing)}.")
    return query, names.pop()


def _check_methods(methods: Sequence[str], empty: str | None = None) -> None:
    """Refuse unknown explanation methods (``empty``: what an empty list means, for the message).

    Raises:
        BadRequest: a method that is not registered (:func:`gmx.explain.list_methods`).
    """
    from gmx.explain import list_methods

    unknown = [m for m in methods if m not in list_methods()]
    if unknown:
        raise BadRequest(
            f"Unknown explanation method(s) {unknown}; known: {', '.join(list_methods())}"
            + (f" ({empty})." if empty else ".")
        )


def _safe_name(text: str) -> str:
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
    return kept or DEFAULT_CASE_ID


def provenance_header(provenance: dict[str, Any]) -> str:
    """Provenance as one ASCII JSON line (an HTTP header value)."""
    return json.dumps(provenance, ensure_ascii=True, separators=(",", ":"))


__all__ = [
    "DEFAULT_CASE_ID",
    "DEFAULT_EXPLAIN_METHODS",
    "EXPLAIN_MEDIA_TYPES",
    "REPORT_MEDIA_TYPES",
    "ExplainAnswer",
    "ExplainOptions",
    "GmxService",
    "ReportOptions",
    "decode_base64",
    "embeddings_from_table",
    "encodings_table",
    "provenance_header",
]
