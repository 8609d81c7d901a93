"""chat/completions and completions, fuzzed: every field of a valid request made hostile (wrong
types, out-of-range and non-finite numbers, huge strings, unknown fields, other models), token
limits up to and far past the context, and streaming clients that hang up mid-answer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz
from tests.fuzz.generative.openai_requests import (
    CONTEXT,
    PREFIXES,
    OpenAiCase,
    case_request,
    exchange,
    openai_cases,
    valid_chat,
    valid_completion,
)
from tests.fuzz.generative.served import LLM_NAME, ServedModel
from tests.fuzz.properties import PropertyViolationError, strict_json
from tests.fuzz.rawhttp import RawRequest, hang_up

pytestmark = pytest.mark.fuzz


@fuzz(share=0.035)
@given(data=st.data())
def test_chat_completions_get_a_client_error_or_a_well_formed_answer(
    data: st.DataObject, llm: ServedModel
) -> None:
    case = data.draw(openai_cases("chat/completions", LLM_NAME), label="case")
    request, case = case_request(data, case)
    exchange(llm.port, case, request)
    llm.sentinel.after_case()


@fuzz(share=0.02)
@given(data=st.data())
def test_completions_get_a_client_error_or_a_well_formed_answer(
    data: st.DataObject, llm: ServedModel
) -> None:
    case = data.draw(openai_cases("completions", LLM_NAME), label="case")
    request, case = case_request(data, case)
    exchange(llm.port, case, request)
    llm.sentinel.after_case()


@st.composite
def token_limit_cases(draw: st.DrawFn) -> OpenAiCase:
    """A valid request that asks for ``max_tokens`` (or max_completion_tokens) around the
    context or far past it, without stopping at the end of text: the server must generate
    them or refuse them, not go on past the context (which takes minutes)."""
    chat = draw(st.booleans())
    endpoint = "chat/completions" if chat else "completions"
    document = draw(valid_chat(LLM_NAME) if chat else valid_completion(LLM_NAME))
    document.pop("max_completion_tokens", None)
    document.pop("max_tokens", None)
    document.pop("n", None)  # one choice: a limit the context allows is generated in full
    document.pop("stream_options", None)
    document["stream"] = False  # the answer's usage tells how many tokens were generated
    limit = draw(
        st.one_of(
            st.integers(CONTEXT - 48, CONTEXT + 8),
            st.sampled_from([CONTEXT * 2, 10**6, 2**32, 2**63, 2**64 - 1]),
        )
    )
    field = draw(st.sampled_from(["max_tokens", "max_completion_tokens"])) if chat else "max_tokens"
    document[field] = limit
    document["ignore_eos"] = True
    prefix = draw(st.sampled_from(PREFIXES))
    return OpenAiCase(endpoint, f"{prefix}/{endpoint}", document, valid=False)


@fuzz(share=0.004)
@given(case=token_limit_cases())
def test_token_limits_past_the_context_are_refused_and_those_within_it_generated(
    case: OpenAiCase, llm: ServedModel
) -> None:
    request = RawRequest("POST", case.path, json.dumps(case.document).encode())
    answer = exchange(llm.port, case, request)
    assert answer is not None
    document = strict_json(answer.body)
    if answer.status == 200:
        usage = document["usage"]
        if usage["prompt_tokens"] + usage["completion_tokens"] > CONTEXT:
            raise PropertyViolationError(f"generated past the context of {CONTEXT}: {usage}")
    elif answer.status != 400 or "context" not in document["error"]["message"]:
        raise PropertyViolationError(f"a token limit refused without saying why: {document}")
    llm.sentinel.after_case()


@st.composite
def hang_ups(draw: st.DrawFn) -> tuple[RawRequest, int, bool]:
    """A valid request for up to a few hundred tokens, streamed or not, whose client reads some
    of the answer (or none) and then goes away."""
    chat = draw(st.booleans())
    endpoint = "chat/completions" if chat else "completions"
    document = draw(valid_chat(LLM_NAME) if chat else valid_completion(LLM_NAME))
    document.pop("max_completion_tokens", None)
    document["max_tokens"] = draw(st.integers(1, 400))
    document["ignore_eos"] = draw(st.booleans())
    document["stream"] = draw(st.integers(0, 3)) > 0
    if not document["stream"]:
        document.pop("stream_options", None)
    prefix = draw(st.sampled_from(PREFIXES))
    body = json.dumps(document).encode()
    request = RawRequest("POST", f"{prefix}/{endpoint}", body)
    read_bytes = draw(st.one_of(st.just(0), st.integers(1, 400), st.integers(400, 20_000)))
    return request, read_bytes, draw(st.booleans())


@fuzz(share=0.01)
@given(case=hang_ups())
def test_clients_that_hang_up_mid_answer_leave_nothing_generating(
    case: tuple[RawRequest, int, bool], llm: ServedModel
) -> None:
    """The sentinel's checks after each batch include that no generation is left running."""
    request, read_bytes, reset = case
    hang_up(llm.port, request, read_bytes=read_bytes, reset=reset)
    llm.sentinel.after_case()
