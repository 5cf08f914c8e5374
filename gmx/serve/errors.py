"""What the service answers when it cannot answer: an HTTP status, a short code and a sentence.

Every error of ``gmx serve`` is JSON ``{"error": code, "message": sentence, "status": status}``
(``message`` is the key GestaltMatcher-Arc's service uses for its errors); never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gmx.errors import GmxError


class ServiceError(GmxError):
    """An answer other than 200. Subclasses fix the status and code.

    Args:
        message: a plain sentence for the client.
        headers: extra response headers (e.g. ``Retry-After``).
        status, code: for an answer no subclass names (e.g. the framework's 404, 405); default
            the class's.
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return error_body(self.status, self.code, self.message)


class BadRequest(ServiceError):
    """The request or its photo cannot be used (not base64, not an image, corrupt): 400."""

    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """No or a wrong access token: 401."""

    status = 401
    code = "unauthorized"


class RequestTimeout(ServiceError):
    """The client took too long to send its body: 408."""

    status = 408
    code = "request_timeout"


class TooLarge(ServiceError):
    """The body or the photo is larger than the configured limit: 413."""

    status = 413
    code = "too_large"


class NoFace(ServiceError):
    """A readable photo without a (usable) face: 422."""

    status = 422
    code = "no_face"


class Overloaded(ServiceError):
    """Too many requests are queued; try again later: 503."""

    status = 503
    code = "overloaded"


class Timeout(ServiceError):
    """The answer took longer than the configured timeout: 504."""

    status = 504
    code = "timeout"


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """``{"error", "message", "status"}``."""
    return {"error": code, "message": message, "status": status}


__all__ = [
    "BadRequest",
    "NoFace",
    "Overloaded",
    "RequestTimeout",
    "ServiceError",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "error_body",
]
