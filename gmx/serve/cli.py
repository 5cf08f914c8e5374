"""``gmx serve``: run the REST service (docs/serve.md) with uvicorn."""

from __future__ import annotations

import argparse
import logging

from gmx._cli_args import add_model_args, apply_threads

log = logging.getLogger("gmx")


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``gmx serve`` to the ``gmx`` command."""
    p = subparsers.add_parser(
        "serve",
        help="GestaltMatcher-Arc-compatible REST service with explanations (docs/serve.md)",
        description="Serve POST /predict, /encode, /crop, /explain, /report and GET /status (OpenAPI at "
        "/docs). Listens on 127.0.0.1 unless told otherwise; any other address needs an access "
        "token (--token, GMX_SERVE_TOKEN or [serve] token).",
    )
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument(
        "--token",
        default=None,
        help="access token clients must send as 'Authorization: Bearer <token>' (prefer "
        "GMX_SERVE_TOKEN: a command line is visible to other users of the machine)",
    )
    p.add_argument(
        "--no-batching",
        action="store_true",
        help="answer one request at a time (no micro-batching, no overlap of alignment and "
        "encoding)",
    )
    p.add_argument("--max-batch", type=int, default=None, help="faces per forward pass")
    add_model_args(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the address and token first (nothing is loaded for a refused address), then load the
    models and serve until interrupted."""
    from gmx.config import from_cli_args
    from gmx.serve.settings import ServeSettings

    cfg = from_cli_args(args)
    settings = ServeSettings.from_config(
        cfg,
        host=args.host,
        port=args.port,
        token=args.token,
        max_batch=args.max_batch,
        batching=False if args.no_batching else None,
    )
    settings.check_exposure()

    import uvicorn

    from gmx.serve.app import create_app

    apply_threads(cfg)  # the app's policy: runtime.threads / GMX_THREADS, 0 = automatic
    app = create_app(cfg, settings=settings)
    log.info(
        "gmx serve on http://%s:%d (docs at /docs; %s; batching %s)",
        settings.host,
        settings.port,
        "token required" if settings.token else "no token: this machine only",
        "on" if settings.batching else "off",
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    return 0


__all__ = ["add_parser", "cmd_serve"]
