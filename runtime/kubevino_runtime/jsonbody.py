"""Request bodies as JSON (RFC 8259), refused with a reason rather than parsed at any cost.

Python's json module accepts what JSON is not (``NaN``, ``Infinity``, ``-Infinity``) and
recurses once per nesting level, so a body of a few thousand ``[`` raised RecursionError out
of the handler. Nesting is therefore measured before parsing, on the raw bytes: strings are cut
out (brackets in them do not nest) and the running depth of what remains is a vectorised sum.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from kubevino_runtime.errors import invalid

# A tensor of tensors.MAX_RANK (32) dimensions nested as its shape, inside the deepest envelope
# either REST API has (TF-Serving: {"instances": [{"input": <tensor>}]}), with room to spare.
MAX_JSON_DEPTH = 40
# Possessive quantifiers: an unterminated string costs one linear scan, never backtracking.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)


def nesting_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in UTF-8 JSON text (0 for a bare value).

    Text that is not JSON gets a number too (json.loads then says what is wrong with it); an
    unterminated string's brackets count, which can only overstate the depth."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return body.count(b"[") + body.count(b"{")  # an upper bound, and within the limit
    structure = np.frombuffer(_STRING.sub(b"", body).translate(None, _NOT_BRACKETS), np.uint8)
    if not structure.size:
        return 0
    steps = np.where(np.isin(structure, _OPENERS), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def parse_json_body(body: bytes, what: str = "request body") -> Any:
    """The JSON document ``body`` holds; a client error naming what is wrong otherwise."""
    try:
        encoding = json.detect_encoding(body)
        text = body if encoding == "utf-8" else body.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(f"{what} is not valid JSON: {error}") from None
    depth = nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise invalid(
            f"{what} nests arrays and objects {depth} deep; at most {MAX_JSON_DEPTH} are accepted"
        )
    try:
        return json.loads(text, parse_constant=_refuse_non_finite)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"{what} is not valid JSON: {error}") from None


def _refuse_non_finite(literal: str) -> Any:
    raise ValueError(f"{literal} is not a JSON number (JSON has no NaN or infinities)")
