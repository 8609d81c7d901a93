"""One error type for every protocol: each front end maps the kind to its own status shape."""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    NOT_FOUND = "not_found"  # unknown model or version
    INVALID = "invalid"  # a client mistake: names, shapes, dtypes, malformed body
    TOO_LARGE = "too_large"  # payload over the limit
    OVERLOADED = "overloaded"  # queue full: retry later
    UNAVAILABLE = "unavailable"  # not loaded yet, or shutting down
    INTERNAL = "internal"  # our fault


HTTP_STATUS = {
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.INVALID: 400,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}


class ServingError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.kind]


def not_found(message: str) -> ServingError:
    return ServingError(ErrorKind.NOT_FOUND, message)


def invalid(message: str) -> ServingError:
    return ServingError(ErrorKind.INVALID, message)
