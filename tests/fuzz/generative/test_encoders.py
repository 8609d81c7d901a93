"""embeddings and rerank, fuzzed: every field of a valid request made hostile — inputs as
strings, lists, token ids, nested lists, huge and empty; queries and documents likewise;
out-of-range top_n and dimensions, unknown encodings, unknown fields, other models."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz
from tests.fuzz.generative.openai_requests import case_request, exchange, openai_cases
from tests.fuzz.generative.served import EMBEDDING_NAME, RERANK_NAME, ServedModel

pytestmark = pytest.mark.fuzz


@fuzz(share=0.015)
@given(data=st.data())
def test_embeddings_get_a_client_error_or_a_well_formed_answer(
    data: st.DataObject, embedder: ServedModel
) -> None:
    case = data.draw(openai_cases("embeddings", EMBEDDING_NAME), label="case")
    request, case = case_request(data, case)
    exchange(embedder.port, case, request)
    embedder.sentinel.after_case()


@fuzz(share=0.015)
@given(data=st.data())
def test_rerank_gets_a_client_error_or_a_well_formed_answer(
    data: st.DataObject, reranker: ServedModel
) -> None:
    case = data.draw(openai_cases("rerank", RERANK_NAME), label="case")
    request, case = case_request(data, case)
    exchange(reranker.port, case, request)
    reranker.sentinel.after_case()
