"""One generated inference request over gRPC, checked: a client status, or OpenVINO's answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from hypothesis import strategies as st

from tests.fuzz.catalog import ServedVersion, arrays_equal
from tests.fuzz.models import Arrays, Reference
from tests.fuzz.properties import PropertyViolationError, call_grpc
from tests.fuzz.strategies import damaged_message


def check_infer_case(
    data: st.DataObject,
    channel: grpc.Channel,
    reference: Reference,
    case: tuple[Any, ServedVersion | None, Arrays | None],
    *,
    method: str,
    bad_utf8_name: bytes,
    well_formed: Callable[[bytes], None],
    outputs: Callable[[bytes], Arrays],
) -> None:
    """Send the drawn request (damaged one time in six) and check the property; a request
    valid for the version it addresses must be answered with what OpenVINO computes."""
    request, addressed, expected_inputs = case
    body = request.SerializeToString()
    if data.draw(st.integers(0, 5), label="damage?") == 0:
        body = data.draw(damaged_message(body, bad_utf8_name), label="damaged")
        expected_inputs = None
    response = call_grpc(channel, method, body, well_formed)
    if expected_inputs is None or addressed is None:
        return
    if response is None:
        raise PropertyViolationError(f"a valid {method.rsplit('/', 1)[-1]} was refused: {request}")
    got = outputs(response)
    expected = reference.outputs(addressed.model, addressed.version, expected_inputs)
    if not arrays_equal(got, expected):
        raise PropertyViolationError(f"{request}: answered {got}, OpenVINO computes {expected}")
