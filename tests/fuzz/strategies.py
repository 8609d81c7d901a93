"""Hostile ingredients every protocol's cases are made of: names, versions, numbers, JSON
values and documents, broken bodies, HTTP framing."""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
from hypothesis import strategies as st

from tests.fuzz.known_valid import KSERVE_TO_NUMPY
from tests.fuzz.models import MODELS

KNOWN_NAMES = tuple(model.name for model in MODELS)
KSERVE_DATATYPES = (*KSERVE_TO_NUMPY, "BYTES")


@dataclass(frozen=True)
class RawJson:
    """JSON text placed as is into a generated document: what json.dumps cannot write
    (nesting deeper than Python recurses, numbers a double cannot hold, non-JSON literals)."""

    text: str


def encode_json(document: Any) -> bytes:
    """``document`` as JSON, with each RawJson spliced in as its text."""
    splices: list[str] = []

    def marked(value: Any) -> Any:
        if isinstance(value, RawJson):
            splices.append(value.text)
            return f"\u0000splice{len(splices) - 1}\u0000"
        if isinstance(value, dict):
            return {key: marked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [marked(item) for item in value]
        return value

    text = json.dumps(marked(document))  # NaN and Infinity come out as Python writes them
    for index, splice in enumerate(splices):
        text = text.replace(json.dumps(f"\u0000splice{index}\u0000"), splice)
    return text.encode("utf-8", "surrogatepass")


# --- names and versions, as they appear in a URL path or a gRPC field -----------------------

ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=40)
LONG_TEXT = st.integers(200, 6000).map(lambda n: "m" * n)


def hostile_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(KNOWN_NAMES),
        st.sampled_from(KNOWN_NAMES).map(str.upper),
        st.sampled_from(KNOWN_NAMES).map(lambda name: name + "\u0301"),  # combining accent
        st.sampled_from(["", ".", "..", "%", "%00", "%2F", "%FF", "a/b", "a b", "../affine"]),
        st.sampled_from(["\u0000", "\u202e", "名前", "🙂", "affine\n", "affine%2Fversions%2F1"]),
        ODD_TEXT,
        LONG_TEXT,
    )


def hostile_versions() -> st.SearchStrategy[str]:
    digits = st.integers(0, 2**70).map(str)
    return st.one_of(
        st.sampled_from(["1", "2", "01", "0"]),
        digits,
        st.sampled_from([str(2**63 - 1), str(2**63), str(2**64), "9" * 4301, "9" * 20000]),
        st.sampled_from(
            ["-1", "+1", " 1", "1 ", "1.0", "1e3", "0x1", "1_000", "\u0661", "\uff11", "\u00b2"]
        ),
        st.sampled_from(["", "latest", "v1", "NaN", "∞", "%31", "1%00", "%"]),
        ODD_TEXT,
        LONG_TEXT,
    )


@st.composite
def path_segment(draw: st.DrawFn, text: str) -> str:
    """``text`` for a URL path: percent-encoded fully or partly, or sent as typed."""
    style = draw(st.sampled_from(["encoded", "slashes kept", "as typed"]))
    if style == "encoded":
        return quote(text, safe="")
    if style == "slashes kept":
        return quote(text, safe="/%")
    # Only what a request line can carry unencoded; anything else is encoded anyway.
    return "".join(c if 0x21 <= ord(c) < 0x7F and c not in "?#" else quote(c) for c in text)


# --- numbers and JSON values ----------------------------------------------------------------

NON_FINITE_LITERALS = st.sampled_from(
    [RawJson("NaN"), RawJson("Infinity"), RawJson("-Infinity"), math.nan, math.inf, -math.inf]
)
# Valid JSON numbers that no double holds, and texts that only look like numbers.
OVERFLOWING_LITERALS = st.sampled_from(
    [RawJson("1e999"), RawJson("-1e999"), RawJson("1" + "0" * 400), RawJson("9" * 5000)]
)
NOT_JSON_NUMBERS = st.sampled_from(
    [RawJson(text) for text in ("nan", "inf", "+1", "01", "1.", ".5", "0x10", "1e", "--1")]
)


def out_of_range_integers() -> st.SearchStrategy[int]:
    edges: list[int] = [2**64, -(2**63) - 1, 10**30, -(10**30), 2**128]
    for integer in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32):
        info = np.iinfo(integer)
        edges += [int(info.max) + 1, int(info.min) - 1]
    return st.one_of(st.sampled_from(edges), st.integers(-(2**80), 2**80))


def hostile_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        out_of_range_integers(),
        st.floats(),  # NaN and infinities included: json.dumps writes them as literals
        st.sampled_from([1e39, -1e39, 3.5e38, 65505.0, 1e-46, 0.5, -0.0, 2.0**64]),
        NON_FINITE_LITERALS,
        OVERFLOWING_LITERALS,
        NOT_JSON_NUMBERS,
        st.booleans(),
        st.none(),
        ODD_TEXT,
        st.just([]),
        st.just({}),
    )


DEPTHS = st.one_of(
    st.sampled_from([2, 8, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100, 999, 1000, 1001, 5000]),
    st.integers(1, 200_000),
)


@st.composite
def deep_nesting(draw: st.DrawFn) -> RawJson:
    """Arrays or objects nested ``depth`` levels, as text (Python could not even write them)."""
    depth = draw(DEPTHS)
    kind = draw(st.sampled_from(["arrays", "objects", "mixed"]))
    inner = draw(st.sampled_from(["0", "1.5", '"x"', "", "null"]))
    if kind == "arrays":
        return RawJson("[" * depth + inner + "]" * depth)
    if kind == "objects":
        return RawJson('{"a":' * depth + (inner or "0") + "}" * depth)
    return RawJson('[{"a":' * (depth // 2) + (inner or "0") + "}]" * (depth // 2))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        hostile_scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(ODD_TEXT, children, max_size=4),
            deep_nesting(),
        ),
        max_leaves=max_leaves,
    )


# --- bodies and HTTP framing ----------------------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` broken the ways a network, a proxy or a careless client breaks bodies."""
    how = draw(
        st.sampled_from(
            ["truncated", "garbage after", "byte changed", "empty", "bom", "utf-16", "latin-1"]
        )
    )
    if how == "truncated":
        return body[: draw(st.integers(0, max(0, len(body) - 1)))]
    if how == "garbage after":
        return body + draw(st.binary(min_size=1, max_size=64))
    if how == "byte changed" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    if how == "bom":
        return b"\xef\xbb\xbf" + body
    if how == "utf-16":
        return body.decode("utf-8", "replace").encode("utf-16")
    if how == "latin-1":
        return body + "é".encode("latin-1")
    return b""


# --- protobuf messages ----------------------------------------------------------------------


@st.composite
def damaged_message(draw: st.DrawFn, body: bytes, bad_utf8_name: bytes) -> bytes:
    """A serialized message broken in transit or by a careless encoder; ``bad_utf8_name`` is
    the message's name field (with its nesting) holding bytes that are not UTF-8."""
    how = draw(st.sampled_from(["truncated", "byte changed", "junk after", "bad utf-8 name"]))
    if how == "truncated":
        return body[: draw(st.integers(0, max(0, len(body) - 1)))]
    if how == "byte changed" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    if how == "bad utf-8 name":
        return body + bad_utf8_name
    return body + draw(st.binary(min_size=1, max_size=32))


def message_bodies(messages: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Bytes to send to any method: random, mostly 0xff, another method's ``messages``, and
    fields whose length or varint runs past the end."""
    return st.one_of(
        st.binary(max_size=256),
        st.binary(max_size=8).map(lambda head: head + b"\xff" * 64),
        messages,
        st.sampled_from([b"\x0a\x03\xff\xfe\xfd", b"\x0a\x80\x80\x80\x80\x10", b"\x08" * 11]),
    )


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/octet-stream",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/grpc",
        "garbage",
        "",
    ]
)
HTTP_METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"]
)


@dataclass(frozen=True)
class Framing:
    """A body as sent, with the headers that describe it."""

    body: bytes
    headers: tuple[tuple[str, str], ...]
    # The body is not in the encoding its header names: aiohttp's parser refuses it.
    breaks_http: bool
    # The server reads the same document the body held before framing.
    same_document: bool


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda body: gzip.compress(body),
    "deflate": lambda body: zlib.compress(body),
}


@st.composite
def content_framing(draw: st.DrawFn, body: bytes) -> Framing:
    """``body`` under an odd Content-Type and a Content-Encoding: really applied, only
    claimed, or one no server knows."""
    headers: list[tuple[str, str]] = []
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    encoding = draw(
        st.sampled_from([None, "identity", "gzip", "deflate", "claimed", "claimed", "x-unknown"])
    )
    if encoding in ENCODERS:
        headers.append(("Content-Encoding", encoding))
        return Framing(ENCODERS[encoding](body), tuple(headers), False, True)
    if encoding == "claimed":
        headers.append(("Content-Encoding", draw(st.sampled_from(["gzip", "deflate", "br"]))))
        return Framing(body, tuple(headers), True, False)
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    return Framing(body, tuple(headers), False, encoding in (None, "identity"))
