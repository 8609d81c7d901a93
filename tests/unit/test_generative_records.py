"""Generative calls on the front-end channel: JSON documents of any size as records that each
fit one packet, joined again in order on the other side; OpenAI's error fields survive."""

from __future__ import annotations

import json

from kubevino_runtime.channel import (
    FRAGMENT_BYTES,
    MAX_RECORD,
    Fragments,
    Generative,
    Step,
    decode,
    encode,
    generative_records,
)
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.generative.openai_protocol import (
    RequestError,
    error_body,
    error_fields,
    error_from_fields,
)


def _through_channel(records: list[Generative]) -> list[Generative]:
    fragments = Fragments()
    joined = []
    for record in records:
        packet = encode(record)
        assert len(packet) <= MAX_RECORD
        decoded = decode(packet, [])
        assert isinstance(decoded, Generative)
        whole = fragments.join(decoded)
        if whole is not None:
            joined.append(whole)
    return joined


def test_a_large_document_travels_in_fragments_and_arrives_whole() -> None:
    document = json.dumps({"data": ["x" * 1000] * 3000}).encode()  # some 3 MB
    records = generative_records(7, Step.REPLY, document)
    assert len(records) == -(-len(document) // FRAGMENT_BYTES)
    assert [record.more for record in records] == [True] * (len(records) - 1) + [False]
    small = generative_records(8, Step.END)
    assert _through_channel([*records, *small]) == [
        Generative(7, Step.REPLY, document),
        Generative(8, Step.END, b""),
    ]


def test_openai_error_fields_rebuild_the_same_error_object() -> None:
    for error in (
        RequestError("max_tokens: too many", "max_tokens"),
        ServingError(ErrorKind.NOT_FOUND, "no such model"),
        ServingError(ErrorKind.OVERLOADED, "the KV cache is full"),
    ):
        rebuilt = error_from_fields(json.loads(json.dumps(error_fields(error))))
        assert error_body(rebuilt) == error_body(error)
        assert rebuilt.http_status == error.http_status
