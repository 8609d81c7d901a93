"""KServe v2 REST inference, fuzzed: JSON bodies made from each version's metadata and then
mutated, and the binary tensor extension with right and wrong sizes and header lengths. Every
answer has the tier's property (properties.py); an unmutated request gets what in-process
OpenVINO computes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz
from tests.fuzz.catalog import (
    ServedVersion,
    arrays_equal,
    check_outputs_match_metadata,
    kserve_answer_outputs,
    read_catalog,
)
from tests.fuzz.kserve_mutations import (
    InferCase,
    binary_infer_cases,
    header_length_values,
    json_infer_cases,
)
from tests.fuzz.models import Reference
from tests.fuzz.properties import HttpWellFormed, PropertyViolationError, check_http
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send
from tests.fuzz.sentinel import Sentinel
from tests.fuzz.strategies import content_framing, damaged, encode_json
from tests.runtime.serving import RunningServer

pytestmark = pytest.mark.fuzz
BINARY_HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def catalog(server: RunningServer) -> tuple[ServedVersion, ...]:
    return read_catalog(server.rest_port)


def infer_well_formed(case: InferCase, catalog: tuple[ServedVersion, ...]) -> HttpWellFormed:
    def check(answer: RawAnswer) -> None:
        document, outputs = kserve_answer_outputs(answer)
        assert isinstance(document.get("id", ""), str), f"id {document['id']!r} is no string"
        served = next(
            s
            for s in catalog
            if s.model == document["model_name"] and str(s.version) == document["model_version"]
        )
        check_outputs_match_metadata(served, outputs)

    return check


def exchange(
    server: RunningServer,
    reference: Reference,
    catalog: tuple[ServedVersion, ...],
    case: InferCase,
    request: RawRequest,
) -> None:
    answer = send(server.rest_port, request)
    check_http(request, answer, infer_well_formed(case, catalog))
    served = case.route.served
    if case.expected_inputs is None or served is None:
        return
    if answer is None or answer.status != 200:
        raise PropertyViolationError(f"a valid request was refused: {request!r} -> {answer!r}")
    _, outputs = kserve_answer_outputs(answer)
    expected = reference.outputs(served.model, served.version, case.expected_inputs)
    if not arrays_equal(outputs, expected):
        raise PropertyViolationError(
            f"{request!r}: answered {outputs}, OpenVINO computes {expected}"
        )


@fuzz(share=0.16)
@given(data=st.data())
def test_json_infer_requests_get_a_client_error_or_the_right_answer(
    data: st.DataObject,
    server: RunningServer,
    reference: Reference,
    catalog: tuple[ServedVersion, ...],
    sentinel: Sentinel,
) -> None:
    case = data.draw(json_infer_cases(catalog), label="case")
    body = encode_json(case.document)
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    if data.draw(st.integers(0, 5), label="damage?") == 0:
        body = data.draw(damaged(body), label="damaged body")
        case = case.without_expectation()
    breaks_http = False
    if data.draw(st.integers(0, 5), label="odd framing?") == 0:
        framing = data.draw(content_framing(body), label="framing")
        body, headers, breaks_http = framing.body, framing.headers, framing.breaks_http
        case = case if framing.same_document else case.without_expectation()
    request = RawRequest("POST", case.route.target, body, headers, breaks_http=breaks_http)
    exchange(server, reference, catalog, case, request)
    sentinel.after_case()


@fuzz(share=0.12)
@given(data=st.data())
def test_binary_extension_requests_get_a_client_error_or_the_right_answer(
    data: st.DataObject,
    server: RunningServer,
    reference: Reference,
    catalog: tuple[ServedVersion, ...],
    sentinel: Sentinel,
) -> None:
    case = data.draw(binary_infer_cases(catalog), label="case")
    head = encode_json(case.document)
    length = data.draw(header_length_values(len(head)), label=BINARY_HEADER)
    if length != str(len(head)):
        case = case.without_expectation()
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/octet-stream"),)
    if length is not None:
        headers += ((BINARY_HEADER, length),)
    if data.draw(st.booleans(), label="header twice?") and length is not None:
        headers += ((BINARY_HEADER, str(len(head) + 1)),)
        case = case.without_expectation()
    request = RawRequest("POST", case.route.target, head + case.payload, headers)
    exchange(server, reference, catalog, case, request)
    sentinel.after_case()
