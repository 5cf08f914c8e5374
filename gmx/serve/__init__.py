"""``gmx serve``: a GestaltMatcher-Arc-compatible REST service with explanations (docs/serve.md).

:func:`create_app` builds the FastAPI application (``POST /predict``, ``/encode``, ``/crop``,
``/explain``, ``GET /status``, OpenAPI at ``/docs``); :class:`GmxService` is its HTTP-free core
(micro-batching, admission control, deadlines); :class:`ServeSettings` its limits (the ``[serve]``
table of the config); :func:`diagnosis_json` the ``/predict`` JSON that ``gmx predict`` writes too.

Names are imported on first use, so that ``gmx serve`` can refuse an unsafe address (and
``gmx --help`` can answer) before FastAPI, torch and MediaPipe load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gmx.serve.answers import diagnosis_json, ranking_json
    from gmx.serve.app import GuardMiddleware, create_app, token_matches
    from gmx.serve.batching import BatchStats, EnsembleBatcher, MicroBatcher
    from gmx.serve.errors import ServiceError
    from gmx.serve.service import ExplainAnswer, ExplainOptions, GmxService, decode_base64
    from gmx.serve.settings import TOKEN_ENV, ServeSettings, is_loopback

_WHERE = {
    "diagnosis_json": "answers",
    "ranking_json": "answers",
    "GuardMiddleware": "app",
    "create_app": "app",
    "token_matches": "app",
    "BatchStats": "batching",
    "EnsembleBatcher": "batching",
    "MicroBatcher": "batching",
    "ServiceError": "errors",
    "ExplainAnswer": "service",
    "ExplainOptions": "service",
    "GmxService": "service",
    "decode_base64": "service",
    "TOKEN_ENV": "settings",
    "ServeSettings": "settings",
    "is_loopback": "settings",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gmx.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gmx.serve.{_WHERE[name]}"), name)


__all__ = [
    "TOKEN_ENV",
    "BatchStats",
    "EnsembleBatcher",
    "ExplainAnswer",
    "ExplainOptions",
    "GmxService",
    "GuardMiddleware",
    "MicroBatcher",
    "ServeSettings",
    "ServiceError",
    "create_app",
    "decode_base64",
    "diagnosis_json",
    "is_loopback",
    "ranking_json",
    "token_matches",
]
