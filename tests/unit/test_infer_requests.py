"""Model Server's nireq when the spec sets no numRequests: several devices working at once
need each device's optimum in flight (the multi-stick guide: 4 per NCS2, 8 for two)."""

from __future__ import annotations

from typing import Any

import pytest

from kubevino_operator.inferrequests import plan_infer_requests
from kubevino_operator.render import model_server_config
from tests.unit.builders import model


def nireq(target: str, **performance: Any) -> int | None:
    subject = model(device={"targetDevice": target}, performance=performance or None)
    entry: dict[str, int] = model_server_config(subject)["model_config_list"][0]["config"]
    return entry.get("nireq")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("MULTI:MYRIAD.1.2-ma2480,MYRIAD.1.4-ma2480", 8),
        ("MULTI:MYRIAD.1,MYRIAD.2,MYRIAD.3", 12),
        ("MULTI:CPU(2),GPU(3)", 5),  # the target writes each device's requests
        ("MULTI:MYRIAD.1(2),MYRIAD.2", 6),
    ],
)
def test_several_devices_get_each_devices_optimum_summed(target: str, expected: int) -> None:
    assert nireq(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "MYRIAD",  # one device: OpenVINO's optimum is the device's
        "MULTI:MYRIAD",  # a list of one
        "MULTI:MYRIAD,CPU",  # CPU's optimum depends on the model and the machine
        "HETERO:GPU,CPU",  # one request passes through both devices
        "AUTO:GPU,CPU",  # AUTO runs on one device unless asked for cumulative throughput
        "BATCH:GPU(4)",
    ],
)
def test_otherwise_the_server_keeps_openvinos_optimum(target: str) -> None:
    assert nireq(target) is None


def test_cumulative_throughput_spreads_auto_over_its_list_like_multi() -> None:
    assert nireq("AUTO:MYRIAD.1,MYRIAD.2", hint="CUMULATIVE_THROUGHPUT") == 8
    assert nireq("AUTO:MYRIAD.1,MYRIAD.2", hint="THROUGHPUT") is None


def test_num_requests_in_the_spec_wins() -> None:
    assert nireq("MULTI:MYRIAD.1,MYRIAD.2", numRequests=3) == 3


def test_the_render_summary_says_where_the_number_came_from() -> None:
    two_sticks = model(device={"targetDevice": "MULTI:MYRIAD.1,MYRIAD.2"})
    assert plan_infer_requests(two_sticks).summary() == (
        "nireq 8 (4 for MYRIAD.1 + 4 for MYRIAD.2, each listed device's optimum)"
    )
    mixed = model(device={"targetDevice": "MULTI:MYRIAD,CPU"})
    assert plan_infer_requests(mixed).summary() == (
        "nireq: OpenVINO's optimum for the compiled model (no optimum known for CPU)"
    )
