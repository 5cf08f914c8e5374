"""A real ``gmx serve`` (uvicorn on a free loopback port, in a thread) on the embedded demo."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gmx.config import DEMO_DIR, GmxConfig
from gmx.pipeline import Diagnoser
from gmx.serve import ServeSettings, create_app

EXAMPLES = sorted((DEMO_DIR / "examples").glob("*.jpg"))


@dataclass(frozen=True)
class Server:
    """A running server: its base URL and the app (``app.state.service``)."""

    url: str
    app: object


@pytest.fixture(scope="session")
def demo_diagnoser() -> Iterator[Diagnoser]:
    """The demo models, gallery and an aligner, shared by every server of the session."""
    with Diagnoser.from_config(GmxConfig()) as diagnoser:
        yield diagnoser


@contextmanager
def running(
    diagnoser: Diagnoser, settings: ServeSettings, config: GmxConfig | None = None
) -> Iterator[Server]:
    """Serve ``create_app`` with uvicorn on a free port of 127.0.0.1 until the block ends."""
    import uvicorn

    app = create_app(config or GmxConfig(), settings=settings, diagnoser=diagnoser)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def serve(demo_diagnoser: Diagnoser) -> Callable[..., object]:
    """``serve(**settings)`` -> context manager of a running :class:`Server`."""

    def start(**changes: object):
        return running(demo_diagnoser, ServeSettings(**changes))

    return start


def b64(path: Path) -> str:
    """A photo file as GestaltMatcher-Arc's clients send it."""
    return base64.b64encode(path.read_bytes()).decode("utf-8")
