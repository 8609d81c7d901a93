"""Requests to the OpenAI-compatible routes: a valid one per endpoint, made hostile field by
field (wrong types, out-of-range and non-finite numbers, huge strings and lists, unknown and
missing fields, other models' names), and what a 2xx answer to each must look like."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from kubevino_runtime.generative.answers import MIN_SAMPLING_TEMPERATURE
from tests.fuzz.generative.served import MODEL_NAMES, sse_events
from tests.fuzz.properties import (
    HttpWellFormed,
    PropertyViolationError,
    check_http,
    openai_error,
    strict_json,
)
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send
from tests.fuzz.strategies import (
    LONG_TEXT,
    ODD_TEXT,
    RawJson,
    content_framing,
    damaged,
    encode_json,
    hostile_names,
    hostile_scalars,
    json_values,
    out_of_range_integers,
)

PREFIXES = ("/v3", "/v3/v1", "/v1")
# The tiny LLM's context (demo_generative.write_llama_gguf): token limits around it must be
# refused or honoured, never generated past.
CONTEXT = 2048
# Valid requests generate a few tokens each, so thousands of cases fit in CI; hostile ones
# ask for anything.
VALID_MAX_TOKENS = st.integers(1, 8)
FINISH_REASONS = frozenset({"stop", "length"})
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
PROMPT_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40
)
# Text with a word the encoders' tokenizer reads: one of spaces and invisible characters only
# is refused (nothing to embed or rank), so it is no valid request.
READABLE_TEXT = TEXT.map(lambda text: f"cat {text}")


@dataclass(frozen=True)
class OpenAiCase:
    endpoint: str  # chat/completions, completions, embeddings or rerank
    path: str
    document: Any  # the body's JSON document (a dict unless mutated into something else)
    valid: bool  # unmutated: it must be answered with a 2xx

    def mutated(self, document: Any) -> OpenAiCase:
        return replace(self, document=document, valid=False)

    def without_expectation(self) -> OpenAiCase:
        return replace(self, valid=False)


# --- hostile values, per kind of field ----------------------------------------------------------


def hostile_integers() -> st.SearchStrategy[Any]:
    """Counts, limits and seeds: negative, zero, past 64 bits, around the context, any JSON."""
    return st.one_of(
        st.integers(-3, 10),
        st.integers(CONTEXT - 40, CONTEXT + 40),
        st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**100]),
        out_of_range_integers(),
        st.sampled_from([1.0, 2.5, -0.0, True, False, "4", "", None, [4], {"value": 4}]),
        st.sampled_from([RawJson("1e999"), RawJson("NaN"), RawJson("-Infinity"), RawJson("4.")]),
        hostile_scalars(),
    )


def hostile_floats() -> st.SearchStrategy[Any]:
    """Temperatures, probabilities and penalties: out of range, non-finite, not numbers."""
    return st.one_of(
        st.floats(),
        st.sampled_from([-1.0, 0.0, 1e-300, 2.0000001, 3.0, 1e308, 1, 0, 2, "0.5", True, None]),
        st.sampled_from([RawJson("NaN"), RawJson("Infinity"), RawJson("1e999"), RawJson("-0")]),
        hostile_scalars(),
    )


def hostile_booleans() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([0, 1, "true", "false", "True", "", None, [], {}, [True], 1.0]),
        hostile_scalars(),
    )


def hostile_texts() -> st.SearchStrategy[Any]:
    """Strings of any size and content, and what is not a string."""
    return st.one_of(
        TEXT,
        LONG_TEXT,
        st.integers(100_000, 600_000).map(lambda n: "word " * (n // 5)),  # far past the context
        st.sampled_from(["", " ", "\u0000", "\u202e", "🙂" * 500, "<|endoftext|>" * 50]),
        st.sampled_from([RawJson('"\\ud800"'), RawJson('"a\\udfffb"'), RawJson('"\\u0000"')]),
        st.lists(TEXT, max_size=3),
        st.lists(st.integers(-5, 300), max_size=8),  # token ids
        hostile_scalars(),
    )


def hostile_text_lists() -> st.SearchStrategy[Any]:
    """Lists of texts (embedding inputs, documents, stop strings): empty, huge, of non-texts,
    nested, token ids; and what is not a list."""
    return st.one_of(
        st.just([]),
        st.lists(TEXT, min_size=1, max_size=6),
        st.lists(hostile_texts(), min_size=1, max_size=4),
        st.integers(17, 12_000).map(lambda n: ["a"] * n),
        st.lists(st.lists(st.integers(-1, 300), max_size=6), min_size=1, max_size=3),
        st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=8),
        hostile_texts(),
        json_values(),
    )


def hostile_model_names() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(MODEL_NAMES),  # another task's model: the wrong endpoint for it
        hostile_names(),
        hostile_scalars(),
    )


def hostile_content_parts() -> st.SearchStrategy[Any]:
    part = st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": hostile_texts()}),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["image_url", "input_audio", "TEXT", "", 1, None])},
            optional={"text": TEXT, "image_url": st.just({"url": "data:image/png;base64,AAAA"})},
        ),
        st.fixed_dictionaries({"text": TEXT}),
        json_values(),
    )
    return st.lists(part, max_size=4)


def hostile_messages() -> st.SearchStrategy[Any]:
    message = st.fixed_dictionaries(
        {},
        optional={
            "role": st.one_of(
                st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
                st.sampled_from(["robot", "User", "", "function", None, 1]),
                hostile_texts(),
            ),
            "content": st.one_of(hostile_texts(), hostile_content_parts()),
            "name": hostile_texts(),
            "tool_calls": json_values(),
            "tool_call_id": hostile_texts(),
        },
    )
    return st.one_of(
        st.lists(st.one_of(message, json_values()), max_size=5),
        st.integers(200, 3000).map(lambda n: [{"role": "user", "content": "hello"}] * n),
        json_values(),
    )


def hostile_stop() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(TEXT, min_size=15, max_size=40),
        st.sampled_from([[""], "", [" "], ["\u0000"], ["<|endoftext|>"]]),
        hostile_text_lists(),
    )


def hostile_stream_options() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"include_usage": hostile_booleans()}),
        st.fixed_dictionaries({"include_usage": st.booleans(), "continuous_usage_stats": TEXT}),
        json_values(),
    )


INTEGER_FIELDS = ("max_tokens", "top_k", "seed", "n")
FLOAT_FIELDS = (
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
)
BOOLEAN_FIELDS = ("stream", "ignore_eos", "include_stop_str_in_output")
Hostility = Callable[[], st.SearchStrategy[Any]]
SAMPLING_FIELDS: dict[str, Hostility] = {
    "model": hostile_model_names,
    **dict.fromkeys(INTEGER_FIELDS, hostile_integers),
    **dict.fromkeys(FLOAT_FIELDS, hostile_floats),
    **dict.fromkeys(BOOLEAN_FIELDS, hostile_booleans),
    "stop": hostile_stop,
    "stream_options": hostile_stream_options,
}
FIELDS: dict[str, dict[str, Hostility]] = {
    "chat/completions": {
        **SAMPLING_FIELDS,
        "messages": hostile_messages,
        "max_completion_tokens": hostile_integers,
        "logprobs": hostile_booleans,
        "top_logprobs": hostile_integers,
        "tools": json_values,
        "response_format": json_values,
    },
    "completions": {
        **SAMPLING_FIELDS,
        "prompt": hostile_texts,
        "logprobs": hostile_integers,
        "echo": hostile_booleans,
        "suffix": hostile_texts,
    },
    "embeddings": {
        "model": hostile_model_names,
        "input": hostile_text_lists,
        "encoding_format": lambda: st.one_of(
            st.sampled_from(["float", "base64", "FLOAT", ""]), hostile_texts()
        ),
        "dimensions": hostile_integers,
        "user": hostile_texts,
    },
    "rerank": {
        "model": hostile_model_names,
        "query": hostile_texts,
        "documents": hostile_text_lists,
        "top_n": hostile_integers,
        "return_documents": hostile_booleans,
    },
}


# --- valid requests -----------------------------------------------------------------------------


def _sampling() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "temperature": st.one_of(st.just(0), st.floats(0, 2)),
        "top_p": st.floats(0.01, 1),
        "top_k": st.integers(-1, 100),
        "seed": st.integers(0, 2**64 - 1),
        "n": st.integers(1, 3),
        "stop": st.one_of(PROMPT_TEXT, st.lists(PROMPT_TEXT, max_size=4)),
        "ignore_eos": st.booleans(),
        "frequency_penalty": st.floats(-2, 2),
        "presence_penalty": st.floats(-2, 2),
        "user": TEXT,  # an OpenAI field the server ignores
    }


@st.composite
def _limited_and_streamed(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """A few tokens at most (chat under either name of the limit), streamed now and then."""
    chat = "messages" in document
    names = ["max_tokens", "max_completion_tokens"] if chat else ["max_tokens"]
    document[draw(st.sampled_from(names))] = draw(VALID_MAX_TOKENS)
    if document.get("n", 1) > 1 and document.get("temperature", 0) < MIN_SAMPLING_TEMPERATURE:
        # Several choices without sampling are beam search's best n, which GenAI only runs
        # without these penalties (and refuses, as a client error, with them).
        document.pop("frequency_penalty", None)
        document.pop("presence_penalty", None)
    if draw(st.integers(0, 3)) == 0:
        document["stream"] = True
        if draw(st.booleans()):
            document["stream_options"] = {"include_usage": draw(st.booleans())}
    return document


def valid_chat(name: str) -> st.SearchStrategy[dict[str, Any]]:
    text_part = st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})
    message = st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
            "content": st.one_of(TEXT, st.lists(text_part, max_size=3)),
        }
    )
    return st.fixed_dictionaries(
        {
            "model": st.just(name),
            "messages": st.lists(message, min_size=1, max_size=3),
        },
        optional={**_sampling(), "logprobs": st.booleans()},
    ).flatmap(_limited_and_streamed)


def valid_completion(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"model": st.just(name), "prompt": PROMPT_TEXT},
        optional={**_sampling(), "logprobs": st.sampled_from([0, 1])},
    ).flatmap(_limited_and_streamed)


def valid_embedding(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "model": st.just(name),
            "input": st.one_of(READABLE_TEXT, st.lists(READABLE_TEXT, min_size=1, max_size=4)),
        },
        optional={"encoding_format": st.sampled_from(["float", "base64"]), "user": TEXT},
    )


def valid_rerank(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "model": st.just(name),
            "query": READABLE_TEXT,
            "documents": st.lists(READABLE_TEXT, min_size=1, max_size=5),
        },
        optional={"top_n": st.integers(1, 8), "return_documents": st.booleans()},
    )


VALID: dict[str, Callable[[str], st.SearchStrategy[dict[str, Any]]]] = {
    "chat/completions": valid_chat,
    "completions": valid_completion,
    "embeddings": valid_embedding,
    "rerank": valid_rerank,
}


# --- mutation -----------------------------------------------------------------------------------


@st.composite
def openai_cases(draw: st.DrawFn, endpoint: str, name: str) -> OpenAiCase:
    """A valid request to ``endpoint`` of model ``name``, as often as not made hostile: fields
    replaced with hostile values of their kind (or any JSON), dropped, unknown ones added, or
    the whole document something other than an object."""
    prefix = draw(st.sampled_from(PREFIXES))
    case = OpenAiCase(endpoint, f"{prefix}/{endpoint}", draw(VALID[endpoint](name)), True)
    mutations = draw(st.integers(0, 3))
    document: dict[str, Any] = dict(case.document)
    fields = FIELDS[endpoint]
    for _ in range(mutations):
        how = draw(st.sampled_from(["replace", "replace", "replace", "any json", "drop", "add"]))
        field = draw(st.sampled_from(sorted(fields)))
        if how == "replace":
            document[field] = draw(fields[field](), label=field)
        elif how == "any json":
            document[field] = draw(json_values(), label=field)
        elif how == "drop":
            document.pop(field, None)
        else:
            document[draw(ODD_TEXT, label="unknown field")] = draw(json_values())
    if mutations and draw(st.integers(0, 9)) == 0:
        return case.mutated(draw(json_values(), label="whole document"))
    return case.mutated(document) if mutations else case


# --- what a 2xx answer must be ------------------------------------------------------------------


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_usage(usage: Any) -> None:
    assert isinstance(usage, dict), f"usage {usage!r}"
    for key, count in usage.items():
        assert isinstance(count, int) and count >= 0, f"usage {key}: {count!r}"


def _choices(document: Any) -> int:
    n = document.get("n", 1) if isinstance(document, dict) else 1
    return n if isinstance(n, int) else 1


def _check_generation(endpoint: str, request: Any, answer: Any) -> None:
    chat = endpoint == "chat/completions"
    assert answer["object"] == ("chat.completion" if chat else "text_completion"), answer
    assert isinstance(answer["id"], str) and answer["id"], answer
    choices = answer["choices"]
    assert [choice["index"] for choice in choices] == list(range(_choices(request))), choices
    for choice in choices:
        assert choice["finish_reason"] in FINISH_REASONS, choice
        text = choice["message"]["content"] if chat else choice["text"]
        assert isinstance(text, str), choice
    _check_usage(answer["usage"])


def _check_stream(endpoint: str, request: Any, answer: RawAnswer) -> None:
    assert answer.content_type == "text/event-stream", answer.content_type
    events = sse_events(answer.body)
    assert events and events[-1] == "[DONE]", f"the stream does not end in [DONE]: {events[-3:]}"
    kind = "chat.completion.chunk" if endpoint == "chat/completions" else "text_completion"
    ended: set[int] = set()
    for event in events[:-1]:
        chunk = strict_json(event.encode())
        if "error" in chunk:
            # An error after the stream began travels as an event; never a server fault.
            error = chunk["error"]
            assert error["type"] != "server_error", f"the stream failed: {error}"
            continue
        assert chunk["object"] == kind, chunk
        for choice in chunk["choices"]:
            if choice.get("finish_reason") is not None:
                assert choice["finish_reason"] in FINISH_REASONS, choice
                ended.add(choice["index"])
        if chunk.get("usage") is not None:
            _check_usage(chunk["usage"])
    assert ended == set(range(_choices(request))), f"choices that ended: {sorted(ended)}"


def _inputs(request: Any) -> int:
    given = request.get("input") if isinstance(request, dict) else None
    return len(given) if isinstance(given, list) else 1


def _check_embeddings(request: Any, answer: Any) -> None:
    data = answer["data"]
    assert [item["index"] for item in data] == list(range(_inputs(request))), data
    for item in data:
        vector = item["embedding"]
        if isinstance(vector, str):
            vector = base64.b64decode(vector, validate=True)
            assert vector and len(vector) % 4 == 0, "base64 that is not float32s"
        else:
            assert vector and all(_finite_number(value) for value in vector), vector
    _check_usage(answer["usage"])


def _check_rerank(request: Any, answer: Any) -> None:
    documents = request["documents"]
    results = answer["results"]
    top_n = request.get("top_n") or len(documents)
    assert len(results) == min(top_n, len(documents)), (len(results), top_n, len(documents))
    indexes = [result["index"] for result in results]
    assert sorted(indexes) == sorted(set(indexes)), f"documents ranked twice: {indexes}"
    assert all(0 <= index < len(documents) for index in indexes), indexes
    scores = [result["relevance_score"] for result in results]
    assert all(_finite_number(score) for score in scores), scores
    assert scores == sorted(scores, reverse=True), f"not most relevant first: {scores}"


def well_formed(case: OpenAiCase) -> HttpWellFormed:
    def check(answer: RawAnswer) -> None:
        request = case.document
        if case.endpoint in ("chat/completions", "completions") and answer.content_type == (
            "text/event-stream"
        ):
            assert isinstance(request, dict) and request.get("stream") is True, "an odd stream"
            _check_stream(case.endpoint, request, answer)
            return
        assert answer.content_type == "application/json", answer.content_type
        document = strict_json(answer.body)
        if case.endpoint == "embeddings":
            _check_embeddings(request, document)
        elif case.endpoint == "rerank":
            _check_rerank(request, document)
        else:
            _check_generation(case.endpoint, request, document)

    return check


# --- sending ------------------------------------------------------------------------------------


def case_request(data: st.DataObject, case: OpenAiCase) -> tuple[RawRequest, OpenAiCase]:
    """``case`` as an HTTP request, now and then with its body damaged or framed oddly (an odd
    Content-Type, a Content-Encoding applied, only claimed, or unknown)."""
    body = encode_json(case.document)
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    if data.draw(st.integers(0, 7), label="damage?") == 0:
        body = data.draw(damaged(body), label="damaged body")
        case = case.without_expectation()
    breaks_http = False
    if data.draw(st.integers(0, 7), label="odd framing?") == 0:
        framing = data.draw(content_framing(body), label="framing")
        body, headers, breaks_http = framing.body, framing.headers, framing.breaks_http
        case = case if framing.same_document else case.without_expectation()
    return RawRequest("POST", case.path, body, headers, breaks_http=breaks_http), case


def exchange(port: int, case: OpenAiCase, request: RawRequest) -> RawAnswer | None:
    """Send ``request`` and check the property; a valid case must get a 2xx."""
    answer = send(port, request)
    check_http(request, answer, well_formed(case), error_reader=openai_error)
    if case.valid and (answer is None or not 200 <= answer.status < 300):
        raise PropertyViolationError(f"a valid request was refused: {request!r} -> {answer!r}")
    return answer
