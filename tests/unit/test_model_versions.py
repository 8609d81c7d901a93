"""A requested model version is decimal digits: anything else is the client's mistake (400),
a number no version can have is not found (404); only a version still loading is a 503."""

from __future__ import annotations

import openvino as ov
import pytest

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.metrics import Metrics
from kubevino_runtime.models import ModelRegistry
from kubevino_runtime.repository import ModelConfig
from kubevino_runtime.versions import MAX_VERSION, parse_version


@pytest.mark.parametrize(
    ("text", "number"),
    [
        (None, None),
        ("", None),
        (0, None),
        ("0", None),
        ("00", None),
        ("1", 1),
        ("007", 7),
        (3, 3),
        (str(MAX_VERSION), MAX_VERSION),
    ],
)
def test_versions_are_decimal_numbers_and_zero_or_none_is_the_latest(
    text: str | int | None, number: int | None
) -> None:
    assert parse_version(text) == number


@pytest.mark.parametrize(
    "text", ["x", "latest", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x1", "1_0", "\u0661", "\uff11"]
)
def test_anything_but_digits_is_an_invalid_version(text: str) -> None:
    with pytest.raises(ServingError) as caught:
        parse_version(text)
    assert caught.value.kind is ErrorKind.INVALID
    assert "model version must be a positive integer" in caught.value.message


@pytest.mark.parametrize("text", [str(MAX_VERSION + 1), str(2**64), "9" * 5000])
def test_a_number_past_int64_is_a_version_no_model_has(text: str) -> None:
    with pytest.raises(ServingError) as caught:
        parse_version(text)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert len(caught.value.message) < 200


def _plane_with_a_model_still_loading() -> DataPlane:
    registry = ModelRegistry(ov.Core(), Metrics(), cache_dir=None, max_queue=1)
    registry.set_configs([ModelConfig(name="affine", base_path="/nonexistent")])
    return DataPlane(registry, registry.metrics)


def test_model_readiness_is_false_only_while_a_version_may_still_come() -> None:
    plane = _plane_with_a_model_still_loading()
    assert plane.model_ready("affine", None) is False


@pytest.mark.parametrize(
    ("name", "version", "kind"),
    [
        ("affine", "x", ErrorKind.INVALID),
        ("affine", "-1", ErrorKind.INVALID),
        ("affine", str(2**64), ErrorKind.NOT_FOUND),
        ("nope", "1", ErrorKind.NOT_FOUND),
    ],
)
def test_model_readiness_of_a_wrong_name_or_version_is_the_clients_mistake(
    name: str, version: str, kind: ErrorKind
) -> None:
    with pytest.raises(ServingError) as caught:
        _plane_with_a_model_still_loading().model_ready(name, version)
    assert caught.value.kind is kind
