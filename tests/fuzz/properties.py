"""The property every answer of every protocol must have, checked the same way everywhere.

A client's mistake is a client error that says what is wrong; it is never a server fault:

* HTTP: a 4xx, whose body is the protocol's JSON error: ``{"error": "<non-empty message>"}``
  for KServe and TF-Serving, OpenAI's error object ``{"error": {"message": "<non-empty>",
  "type": "<kind>", ...}}`` for the OpenAI-compatible routes. 503 only for overload or a model
  still loading, with a message saying so. A 2xx only when the
  (mutated) request happens to be valid, and then the answer must be well-formed.
* gRPC: a status in ``CLIENT_CODES`` with non-empty details (UNAVAILABLE only for overload or
  loading, saying so), never UNKNOWN or INTERNAL; an OK answer must parse as the method's
  response message and be well-formed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import grpc

from tests.fuzz.rawhttp import RawAnswer, RawRequest

# Why a server may turn a well-formed request away without it being the client's mistake.
OVERLOAD_OR_LOADING = re.compile(r"overload|loading|no loaded version|shutting down", re.I)
CLIENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAVAILABLE,
    }
)
# HTTP statuses aiohttp's request parser answers for bytes that are not an HTTP request; its
# body is text, not the JSON the APIs use, since no API was reached.
PARSER_STATUSES = frozenset({400, 413, 414, 431})

HttpWellFormed = Callable[[RawAnswer], None]
# The message of an API's error document, or None when the document is not that API's error.
ErrorReader = Callable[[Any], "str | None"]


def plain_error(document: Any) -> str | None:
    """KServe's and TF-Serving's error: ``{"error": "message"}``."""
    found = document.get("error") if isinstance(document, dict) else None
    return found if isinstance(found, str) else None


def openai_error(document: Any) -> str | None:
    """OpenAI's error object: ``{"error": {"message": "...", "type": "...", ...}}``, which
    OpenAI's clients read the message and the kind of error from."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return None
    message, kind = error.get("message"), error.get("type")
    if not isinstance(message, str) or not isinstance(kind, str) or not kind:
        return None
    return message


class PropertyViolationError(AssertionError):
    """An answer a client's mistake must never get."""


def _fail(what: str, request: object, answer: object) -> PropertyViolationError:
    return PropertyViolationError(
        f"{what}\n  request: {_short(request)}\n  answer: {_short(answer)}"
    )


def _short(value: object, limit: int = 1500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def strict_json(body: bytes) -> Any:
    """JSON as RFC 8259 defines it: NaN and Infinity are not numbers here."""

    def refuse(literal: str) -> Any:
        raise ValueError(f"{literal} is not JSON")

    return json.loads(body, parse_constant=refuse)


def http_error_message(
    answer: RawAnswer, *, from_parser: bool, error_reader: ErrorReader = plain_error
) -> str:
    """The error message of a non-2xx answer; raises PropertyViolationError when there is none."""
    if from_parser and answer.status in PARSER_STATUSES and answer.content_type == "text/plain":
        message = answer.body.decode("utf-8", "replace").strip()
    else:
        if answer.content_type != "application/json":
            raise PropertyViolationError(
                f"error answer is {answer.content_type or 'untyped'}, not the API's JSON error: "
                f"{answer.body[:300]!r}"
            )
        try:
            document = strict_json(answer.body)
        except ValueError as error:
            raise PropertyViolationError(
                f"error body is not JSON ({error}): {answer.body[:300]!r}"
            ) from None
        found = error_reader(document)
        if found is None:
            raise PropertyViolationError(
                f"error body is not the API's error ({error_reader.__name__}): "
                f"{answer.body[:300]!r}"
            )
        message = found
    if not message.strip():
        raise PropertyViolationError("error message is empty")
    return message


def check_http(
    request: RawRequest,
    answer: RawAnswer | None,
    well_formed: HttpWellFormed | None = None,
    *,
    error_reader: ErrorReader = plain_error,
) -> None:
    """The property for one HTTP exchange; ``well_formed`` checks a 2xx answer's body and
    ``error_reader`` finds the message in the API's error document."""
    if answer is None:
        if not request.is_cut:
            raise _fail("server closed the connection without answering", request, answer)
        return  # the client cut its own body short: closing is a fair answer
    status = answer.status
    if 200 <= status < 300:
        if request.method != "HEAD" and well_formed is not None:
            try:
                well_formed(answer)
            except (AssertionError, ValueError, KeyError, TypeError) as error:
                raise _fail(f"2xx answer is malformed: {error}", request, answer) from None
        return
    if status == 503:
        message = "" if request.method == "HEAD" else _error_text(answer)
        if request.method != "HEAD" and not OVERLOAD_OR_LOADING.search(message):
            raise _fail("503 for something other than overload or loading", request, answer)
        return
    if not 400 <= status < 500:
        raise _fail(f"HTTP {status} is not a client error", request, answer)
    if request.method == "HEAD":
        return  # a HEAD answer has no body to carry the message
    try:
        http_error_message(answer, from_parser=request.parser_refuses, error_reader=error_reader)
    except PropertyViolationError as violation:
        raise _fail(str(violation), request, answer) from None


def _error_text(answer: RawAnswer) -> str:
    try:
        document = strict_json(answer.body)
    except ValueError:
        return answer.body.decode("utf-8", "replace")
    if isinstance(document, dict):
        return " ".join(str(value) for value in document.values())
    return str(document)


def check_grpc_error(request: object, code: grpc.StatusCode, details: str | None) -> None:
    """The property for a gRPC call that did not succeed."""
    if code not in CLIENT_CODES:
        raise _fail(f"gRPC {code.name} is not a client-side status: {details!r}", request, None)
    if not details or not details.strip():
        raise _fail(f"gRPC {code.name} without details", request, None)
    if code == grpc.StatusCode.UNAVAILABLE and not OVERLOAD_OR_LOADING.search(details):
        raise _fail(f"UNAVAILABLE for something other than overload: {details}", request, None)


def call_grpc(
    channel: grpc.Channel,
    method: str,
    body: bytes,
    well_formed: Callable[[bytes], None],
    *,
    timeout: float = 60.0,
) -> bytes | None:
    """Send ``body`` as is to ``method`` and check the property; the response bytes when OK."""
    call = channel.unary_unary(method)  # no serializers: bytes in, bytes out
    try:
        response: bytes = call(body, timeout=timeout)
    except grpc.RpcError as error:
        check_grpc_error((method, body), error.code(), error.details())
        return None
    try:
        well_formed(response)
    except (AssertionError, ValueError, KeyError, TypeError) as error:
        raise _fail(f"OK answer is malformed: {error}", (method, body), response) from None
    return response
