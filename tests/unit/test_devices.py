"""The target_device grammar: what OpenVINO accepts parses and prints back unchanged;
anything else is refused with the token and its position; the CEL rules agree."""

from __future__ import annotations

import re
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevino_common.devices import (
    MISUSE_PATTERN,
    SYNTAX_PATTERN,
    Device,
    Target,
    TargetDeviceError,
    parse_target,
)

ACCEPTED = [
    "CPU",
    "GPU",
    "GPU.1",
    "NPU",
    "MYRIAD",
    "HDDL",
    "NVIDIA",
    "AUTO",
    "AUTO:GPU,CPU",
    "AUTO:-CPU",
    "AUTO:GPU.1,GPU.0,CPU",
    "MULTI:MYRIAD,CPU",
    "MULTI:CPU(2),GPU(2)",
    "MULTI:MYRIAD.1.2-ma2480,MYRIAD.1.4-ma2480",
    "HETERO:GPU,CPU",
    "BATCH:GPU(4)",
    "BATCH:GPU",
    "MYRIAD.1.2-ma2480",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_every_documented_form_round_trips(text: str) -> None:
    assert str(parse_target(text)) == text


def test_structure_of_a_multi_target_with_request_counts() -> None:
    target = parse_target("MULTI:CPU(2),GPU(2)")
    assert target.virtual == "MULTI"
    assert target.devices == (Device("CPU", count=2), Device("GPU", count=2))
    assert target.families() == ("CPU", "GPU")


def test_structure_of_auto_exclusion_and_instances() -> None:
    excluding = parse_target("AUTO:-CPU")
    assert excluding.is_open_auto and excluding.exclusions == {"CPU"}
    listed = parse_target("AUTO:GPU.1,GPU.0,CPU")
    assert listed.instances("GPU") == {"0", "1"} and not listed.is_open_auto


def test_batch_size_and_instance_ids() -> None:
    assert parse_target("BATCH:GPU(4)").batch_size == 4
    stick = parse_target("MYRIAD.1.2-ma2480").devices[0]
    assert (stick.family, stick.instance) == ("MYRIAD", "1.2-ma2480")


REFUSED = [
    ("MULTI:", 6, "expected a device"),
    ("GPU(", 3, "only allowed inside MULTI"),
    ("MULTI:GPU(", 10, "expected a request count"),
    ("AUTO:-", 6, "expected a device name"),
    ("", 0, "empty"),
    ("MULTI", 5, "needs a device list"),
    ("HETERO", 6, "needs a device list"),
    ("gpu", 0, "upper case: write 'GPU'"),
    ("AUTO:GPU, CPU", 9, "a space"),
    ("MULTI:CPU,CPU", 10, "listed twice"),
    ("MULTI:CPU(0)", 10, "between 1 and"),
    ("MULTI:CPU(2", 11, "expected ')'"),
    ("HETERO:GPU(2),CPU", 10, "only allowed inside MULTI"),
    ("AUTO:MULTI:GPU", 5, "cannot be nested"),
    ("MULTI:NVIDIA,CPU", 6, "NVIDIA plugin cannot run under"),
    ("BATCH:GPU,CPU", 9, "exactly one device"),
    ("-CPU", 0, "only allowed inside AUTO"),
    ("MULTI:-CPU", 6, "only allowed inside AUTO"),
    ("GPU.", 4, "expected an instance id"),
    ("GPU.1-", 5, "cannot end with '-'"),
    ("CPU,GPU", 3, "unexpected ','"),
    ("AUTO.1", 4, "expected ':' after AUTO"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), REFUSED)
def test_garbage_is_refused_naming_the_token_and_position(
    text: str, position: int, fragment: str
) -> None:
    with pytest.raises(TargetDeviceError) as caught:
        parse_target(text)
    assert caught.value.position == position
    assert fragment in str(caught.value)
    assert f"at position {position}" in str(caught.value)


# --- property-based ---------------------------------------------------------------------------

families = st.sampled_from(["CPU", "GPU", "NPU", "MYRIAD", "HDDL", "FPGA_X", "VPUX"])
instances = st.none() | st.from_regex(
    r"[A-Za-z0-9]{1,3}([._-][A-Za-z0-9]{1,3}){0,2}", fullmatch=True
)
counts = st.integers(min_value=1, max_value=9999)


def _unique(devices: list[Device]) -> bool:
    names = [device.name for device in devices]
    return len(names) == len(set(names))


@st.composite
def targets(draw: st.DrawFn) -> Target:
    kind = draw(st.sampled_from(["single", "AUTO", "MULTI", "HETERO", "BATCH"]))
    if kind == "single":
        return Target(None, (Device(draw(families), draw(instances)),))
    if kind == "BATCH":
        return Target("BATCH", (Device(draw(families), draw(instances), draw(st.none() | counts)),))
    size = draw(st.integers(min_value=0 if kind == "AUTO" else 1, max_value=4))
    devices = [
        Device(
            draw(families),
            draw(instances),
            draw(st.none() | counts) if kind == "MULTI" else None,
            draw(st.booleans()) if kind == "AUTO" else False,
        )
        for _ in range(size)
    ]
    if not _unique(devices):
        devices = devices[:1]
    return Target(kind, tuple(devices))  # type: ignore[arg-type]


@given(targets())
def test_printing_then_parsing_gives_the_same_target(target: Target) -> None:
    assert parse_target(str(target)) == target


ALPHABET = "AUTOMULTIHETEROBATCHCPUGPUNVIDIAMYRIAD.:,-()0123456789 ag_"
garbage = st.text(alphabet=ALPHABET, max_size=24) | targets().map(str).flatmap(
    lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut])
)


def _parser_accepts(text: str) -> bool:
    """Whether the parser accepts ``text``, repeated devices allowed.

    A regular expression cannot see that a device is listed twice; admission lets such a target
    through and the operator refuses it with the parser's message.
    """
    try:
        parse_target(text, reject_duplicates=False)
    except TargetDeviceError:
        return False
    return True


def _patterns_accept(text: str) -> bool:
    return bool(re.search(SYNTAX_PATTERN, text)) and not re.search(MISUSE_PATTERN, text)


@settings(max_examples=1500)
@given(garbage)
def test_the_admission_patterns_accept_exactly_what_the_parser_accepts(text: str) -> None:
    assert _patterns_accept(text) == _parser_accepts(text), text


_CEL = celpy.Environment()
_CEL_RULES = [
    _CEL.program(_CEL.compile(f"self.matches('{SYNTAX_PATTERN}')")),
    _CEL.program(_CEL.compile(f"!self.matches('{MISUSE_PATTERN}')")),
]


def _cel_accepts(text: str) -> bool:
    activation: dict[str, Any] = {"self": json_to_cel(text)}
    return all(bool(rule.evaluate(activation)) for rule in _CEL_RULES)


@settings(max_examples=300)
@given(garbage)
def test_the_crd_cel_rules_evaluate_like_the_parser(text: str) -> None:
    assert _cel_accepts(text) == _parser_accepts(text), text
