"""The FastAPI application of ``gmx serve``: GestaltMatcher-Arc's endpoints plus ``/explain``.

``POST /predict``, ``/encode``, ``/crop`` take GestaltMatcher-Arc's body ``{"img": <base64 photo>}``
(optional gmx fields: ``case_id``, ``face``, ``top_k``, ``min_distance``) and answer in that
service's shapes; ``GET /status`` says ``{"status": "running"}``. ``POST /explain`` returns maps as a
labelled PNG grid or an ``.npz``; ``POST /report`` the case report (PDF or HTML). OpenAPI docs at
``/docs``. Every error is JSON
(:mod:`gmx.serve.errors`).

Two checks run before any body is read (:class:`GuardMiddleware`): the access token, when one is set
(``Authorization: Bearer <token>``, or HTTP Basic with the token as password, which is what
GestaltMatcher-Arc's clients send), and the body size (413 from ``Content-Length`` or while reading;
408 for a client that sends too slowly). The body is held in memory only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gmx import __version__
from gmx.config import GmxConfig, load_config
from gmx.pipeline import Diagnoser
from gmx.report import DEFAULT_TOP_K as REPORT_TOP_K
from gmx.report.cli import DEFAULT_MAP_ROWS, DEFAULT_REPORT_METHODS
from gmx.serve.errors import (
    BadRequest,
    RequestTimeout,
    ServiceError,
    TooLarge,
    Unauthorized,
)
from gmx.serve.service import (
    DEFAULT_CASE_ID,
    DEFAULT_EXPLAIN_METHODS,
    EXPLAIN_MEDIA_TYPES,
    REPORT_MEDIA_TYPES,
    ExplainAnswer,
    ExplainOptions,
    GmxService,
    ReportOptions,
    decode_base64,
    provenance_header,
)
from gmx.serve.settings import ServeSettings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Methods whose body the guard reads (and limits) before the application sees it.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PROVENANCE_HEADER = "X-GMX-Provenance"


# --------------------------------------------------------------------------------- request bodies
class ImageBody(BaseModel):
    """GestaltMatcher-Arc's request body, plus gmx's optional fields."""

    img: str = Field(description="The photo's bytes, base64 (a data: URI prefix is accepted).")
    case_id: str = Field(DEFAULT_CASE_ID, max_length=200, description="Echoed as case_id.")
    face: int = Field(0, ge=0, description="Which face of the photo (0 = largest).")


class PredictBody(ImageBody):
    top_k: int | None = Field(None, ge=0, description="List at most this many per list.")
    min_distance: float | None = Field(
        None, description="Drop gallery matches at or below this distance (the service: 0.3)."
    )


class EncodingBody(BaseModel):
    """GestaltMatcher-Arc's ``/predict_encoding`` body."""

    encodings: list[dict[str, Any]] | dict[str, dict[str, Any]] = Field(
        description="Rows img_name, model, flip, gray, class_conf, representations (a list of "
        "records, or the mapping /encode returns)."
    )
    top_k: int | None = Field(None, ge=0, description="List at most this many per list.")
    min_distance: float | None = Field(None, description="Drop matches at or below it.")


class ExplainBody(ImageBody):
    methods: list[str] = Field(
        list(DEFAULT_EXPLAIN_METHODS),
        min_length=1,
        description="Explanation methods (see GET /status for the models; docs/explain.md).",
    )
    top_k: int = Field(3, ge=1, le=30, description="Top syndromes to explain (rows).")
    target: str = Field("similarity", description="similarity, logit or contrast.")
    all_variants: bool = Field(False, description="Average over every model/TTA variant.")
    format: str = Field("png", description="png (labelled grid) or npz (raw maps).")
    window: int = Field(10, ge=1, le=112, description="Occlusion patch side (pixels).")
    stride: int = Field(5, ge=1, le=112, description="Occlusion step (pixels).")
    ig_steps: int = Field(32, ge=1, le=512, description="Integrated-gradients steps.")

    def options(self) -> ExplainOptions:
        """What the service computes (the format is checked by the service)."""
        return ExplainOptions(
            methods=tuple(self.methods),
            top_k=self.top_k,
            target=self.target,
            all_variants=self.all_variants,
            fmt=self.format,  # type: ignore[arg-type]
            window=self.window,
            stride=self.stride,
            ig_steps=self.ig_steps,
        )


class ReportBody(ImageBody):
    """``/report``'s body: the photo and what the case report holds (``gmx report``'s options)."""

    case_id: str | None = Field(  # type: ignore[assignment]
        None,
        max_length=200,
        description="Case id (default: case-<8 hex digits of the photo's SHA-256>).",
    )
    format: str = Field("pdf", description="pdf or html.")
    methods: list[str] = Field(
        list(DEFAULT_REPORT_METHODS),
        description="Explanation methods drawn in the report ([]: no maps).",
    )
    top_k: int = Field(REPORT_TOP_K, ge=1, le=30, description="Syndromes and genes listed.")
    rows: int = Field(
        DEFAULT_MAP_ROWS, ge=1, le=30, description="Top syndromes explained by the maps."
    )
    include_face: bool = Field(
        False, description="Put the aligned face in the report (default: no pixel of the face)."
    )
    hpo: list[str] = Field([], description="HPO term ids confirmed present (HP:NNNNNNN).")
    absent_hpo: list[str] = Field([], description="HPO term ids confirmed absent (left out).")

    def options(self) -> ReportOptions:
        """What the report holds (the format is checked by the service)."""
        return ReportOptions(
            fmt=self.format,  # type: ignore[arg-type]
            methods=tuple(dict.fromkeys(self.methods)),
            top_k=self.top_k,
            rows=self.rows,
            include_face=self.include_face,
            hpo=tuple(self.hpo),
            absent_hpo=tuple(self.absent_hpo),
        )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request: not JSON of this shape, not base64, not a readable image"},
    401: {"description": "Missing or wrong access token"},
    408: {"description": "The request body did not arrive in time"},
    413: {"description": "Body or photo larger than the configured limits"},
    422: {"description": "No face (or not the requested face) in the photo"},
    503: {"description": "Too many requests in progress; retry after Retry-After seconds"},
    504: {"description": "Not answered within the configured time limit"},
}


async def json_response(content: Any) -> Response:
    """``content`` as a JSON response, serialised in a worker thread.

    FastAPI's default (``jsonable_encoder`` on the event loop) took 160-200 ms for one demo
    ``/predict`` answer (about 180 kB: every syndrome, gene and patient with per-variant distances)
    on the loaded 2-core box, longer than the forward pass; ``json.dumps`` takes 15-50 ms and no
    longer blocks other requests' I/O.
    """
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(None, _dumps, content)
    return Response(body, media_type="application/json")


def file_response(answer: ExplainAnswer) -> Response:
    """A file answer of ``/explain`` or ``/report``: its bytes as an attachment, the provenance in
    the ``X-GMX-Provenance`` header."""
    return Response(
        answer.content,
        media_type=answer.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{answer.filename}"',
            PROVENANCE_HEADER: provenance_header(answer.provenance),
        },
    )


def _file_responses(media_types: Mapping[str, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a file endpoint: the errors, and 200 in these media types."""
    content = {media.split(";")[0]: {} for media in media_types.values()}
    return {**ERROR_RESPONSES, 200: {"content": content}}


def _dumps(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------- the guard
def error_response(error: ServiceError) -> Response:
    """The one JSON answer of every error (:meth:`ServiceError.body`, its status and headers)."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def token_matches(authorization: str, token: str) -> bool:
    """True when an ``Authorization`` header carries ``token``: ``Bearer <token>``, or ``Basic``
    with ``<any user>:<token>`` (GestaltMatcher-Arc's clients send HTTP Basic). Constant time."""
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "bearer":
        return secrets.compare_digest(value.encode(), token.encode())
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        _, sep, password = decoded.partition(":")
        return bool(sep) and secrets.compare_digest(password.encode(), token.encode())
    return False


class GuardMiddleware:
    """Token check on every request, then the whole body read into memory with a size and time
    limit (so the application never sees an oversized or trickling body)."""

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = self.settings.token
        if token and not token_matches(headers.get("authorization", ""), token):
            error = Unauthorized(
                "This service needs an access token: send 'Authorization: Bearer <token>' (or "
                "HTTP Basic with the token as password).",
                headers={"WWW-Authenticate": 'Bearer realm="gmx", Basic realm="gmx"'},
            )
            await error_response(error)(scope, receive, send)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await error_response(_too_large(int(declared), limit))(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(
                _read_body(receive, limit), self.settings.body_read_timeout_s
            )
        except TimeoutError:
            error: ServiceError = RequestTimeout(
                f"The request body did not arrive within {self.settings.body_read_timeout_s:g} s."
            )
            await error_response(error)(scope, receive, send)
            return
        except ServiceError as error:
            await error_response(error)(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect when the client goes away

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, streamed=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(size: int, limit: int, streamed: bool = False) -> TooLarge:
    what = f"more than {size:,}" if streamed else f"{size:,}"
    return TooLarge(
        f"The request body is {what} bytes, more than this service's limit of {limit:,} bytes; "
        "send a smaller photo (the limit counts the base64 text)."
    )


# --------------------------------------------------------------------------------- the application
def create_app(
    config: GmxConfig | None = None,
    *,
    settings: ServeSettings | None = None,
    diagnoser: Diagnoser | None = None,
) -> FastAPI:
    """The ``gmx serve`` application.

    Args:
        config: models and gallery (default :func:`gmx.config.load_config`); loaded here unless
            ``diagnoser`` is given.
        settings: limits, token, batching (default ``ServeSettings.from_config(config)``).
        diagnoser: an already loaded diagnoser to serve (shared, not closed by the app; e.g. tests
            and benchmarks serving two apps from one set of models).
    """
    cfg = config or load_config()
    opts = settings or ServeSettings.from_config(cfg)
    owned = diagnoser is None
    diag = diagnoser or Diagnoser.from_config(cfg, progress=log.info)
    service = GmxService(diag, opts, demo=cfg.is_demo, gallery_file=cfg.gallery_path)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()
            if owned:
                diag.close()

    app = FastAPI(
        title="gmx serve",
        version=__version__,
        description=(
            "GestaltMatcher-Arc-compatible REST service with explanations (docs/serve.md). "
            + (
                "Synthetic demo models: answers are not about real patients. "
                if cfg.is_demo
                else ""
            )
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    _install_error_handlers(app)

    @app.post("/predict", responses=ERROR_RESPONSES, summary="Rank syndromes for a photo")
    async def predict(body: PredictBody) -> Response:
        """GestaltMatcher-Arc's answer: suggested syndromes, genes and patients (``gmx`` extras)."""
        return await json_response(
            await service.predict(
                decode_base64(body.img),
                case_id=body.case_id,
                face_index=body.face,
                top_k=body.top_k,
                min_distance=body.min_distance,
            )
        )

    @app.post("/encode", responses=ERROR_RESPONSES, summary="Embed a photo's face")
    async def encode(body: ImageBody) -> Response:
        """``{"encodings": ...}`` as GestaltMatcher-Arc's service writes it (one row per
        model/TTA variant)."""
        return await json_response(
            await service.encode(
                decode_base64(body.img), case_id=body.case_id, face_index=body.face
            )
        )

    @app.post(
        "/predict_encoding", responses=ERROR_RESPONSES, summary="Rank syndromes for embeddings"
    )
    async def predict_encoding(body: EncodingBody) -> Response:
        """The ``/predict`` answer for embeddings computed elsewhere with the same models."""
        return await json_response(
            await service.predict_encoding(
                body.encodings, top_k=body.top_k, min_distance=body.min_distance
            )
        )

    @app.post("/crop", responses=ERROR_RESPONSES, summary="The aligned 112x112 face")
    async def crop(body: ImageBody) -> dict[str, Any]:
        """``{"crop": <base64 PNG>}``."""
        return await service.crop(decode_base64(body.img), face_index=body.face)

    @app.post(
        "/explain",
        responses=_file_responses(EXPLAIN_MEDIA_TYPES),
        response_class=Response,
        summary="Attribution maps of the top syndromes (PNG grid or .npz)",
    )
    async def explain(body: ExplainBody) -> Response:
        """Methods x top-k syndromes. The provenance (models, gallery, photo SHA-256, face,
        variants, target, methods) is inside the file and in the ``X-GMX-Provenance`` header."""
        return file_response(
            await service.explain(
                decode_base64(body.img), body.options(), case_id=body.case_id, face_index=body.face
            )
        )

    @app.post(
        "/report",
        responses=_file_responses(REPORT_MEDIA_TYPES),
        response_class=Response,
        summary="The case report of a photo (PDF or HTML)",
    )
    async def report(body: ReportBody) -> Response:
        """Top-k syndromes with calibrated statements, genes, HPO features, explanation maps and
        provenance (docs/report.md), built in memory. The provenance is also in the
        ``X-GMX-Provenance`` header."""
        return file_response(
            await service.report(
                decode_base64(body.img), body.options(), case_id=body.case_id, face_index=body.face
            )
        )

    @app.get("/status", summary="Liveness and what is loaded")
    async def status() -> dict[str, Any]:
        """``{"status": "running"}`` plus models, gallery, limits and batching counts."""
        return service.status()

    if opts.token:
        _document_token(app)
    app.add_middleware(GuardMiddleware, settings=opts)
    return app


def _document_token(app: FastAPI) -> None:
    """Declare the token in the OpenAPI schema, so /docs offers an Authorize button."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "token": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic", "description": "token as password"},
            }
            schema["security"] = [{"token": []}, {"basic": []}]
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


#: Codes of the framework's own errors (an unknown path or method); others are ``http_error``.
HTTP_ERROR_CODES: dict[int, str] = {404: "not_found", 405: "method_not_allowed"}


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure as :func:`error_response` of a :class:`ServiceError`: the service's own, a
    body that does not validate (400), the framework's (404, 405, ...), anything else (500)."""

    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return error_response(BadRequest(_validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        error = ServiceError(
            str(exc.detail), headers=exc.headers, status=exc.status_code, code=code
        )
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.error("unexpected error in a request", exc_info=exc)
        return error_response(ServiceError("The service failed on this request (logged)."))


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return (
        'The request body must be JSON like {"img": "<base64 photo>"}; ' + "; ".join(problems) + "."
    )


__all__ = [
    "ERROR_RESPONSES",
    "HTTP_ERROR_CODES",
    "PROVENANCE_HEADER",
    "EncodingBody",
    "ExplainBody",
    "GuardMiddleware",
    "ImageBody",
    "PredictBody",
    "ReportBody",
    "create_app",
    "error_response",
    "file_response",
    "token_matches",
]
