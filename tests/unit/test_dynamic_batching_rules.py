"""Which model versions can batch, and which waiting requests form the next inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from kubevino_runtime.batching import (
    AUTOMATIC,
    Batchability,
    BatchingSettings,
    batchability,
    next_batch,
    rows_of,
)
from kubevino_runtime.served import TensorInfo

ON = BatchingSettings(max_batch=8)


def _tensor(name: str, *bounds: tuple[int, int | None]) -> TensorInfo:
    shape = tuple(low if low == high else -1 for low, high in bounds)
    return TensorInfo(name, np.dtype(np.float32), shape, tuple(bounds))


IMAGES = _tensor("input", (0, None), (3, 3), (224, 224), (224, 224))
SCORES = _tensor("scores", (0, None), (1000, 1000))


@dataclass
class Waiting:
    rows: int | None
    shape_key: tuple[tuple[int, ...], ...] = ((3, 224, 224),)


def test_a_version_with_dynamic_first_dimensions_batches_up_to_the_maximum() -> None:
    assert batchability([IMAGES], [SCORES], ON).limit == 8


def test_a_bounded_batch_dimension_caps_the_batch() -> None:
    bounded = _tensor("input", (1, 4), (3, 3), (224, 224), (224, 224))
    assert batchability([bounded], [SCORES], ON).limit == 4
    single = _tensor("input", (1, 1), (3, 3))
    assert batchability([single], [SCORES], ON).limit == 1


@pytest.mark.parametrize(
    ("inputs", "outputs", "reason"),
    [
        (
            [_tensor("input", (1, 1), (3, 3))],
            [SCORES],
            "input input's first dimension is fixed at 1: give the model a dynamic batch "
            "(batch_size -1 or a range such as 1:8)",
        ),
        ([IMAGES], [_tensor("total")], "output total is a scalar: no batch dimension"),
        (
            [IMAGES],
            [_tensor("mean", (10, 10))],
            "output mean's first dimension is fixed at 10",
        ),
    ],
)
def test_a_version_without_a_batch_dimension_does_not_batch_and_says_why(
    inputs: list[TensorInfo], outputs: list[TensorInfo], reason: str
) -> None:
    found = batchability(inputs, outputs, ON)
    assert found.limit == 1
    assert found.reason.startswith(reason)


def test_by_default_cpu_versions_that_can_batch_do_so_up_to_eight_and_others_do_not() -> None:
    assert batchability([IMAGES], [SCORES], AUTOMATIC, ["CPU"]) == (
        Batchability(8, "up to 8 rows per inference (--max_dynamic_batch auto)")
    )
    on_gpu = batchability([IMAGES], [SCORES], AUTOMATIC, ["GPU.0"])
    assert on_gpu == Batchability(
        1, "off by default on GPU: measured to win on CPU only; --max_dynamic_batch N turns it on"
    )
    assert batchability([IMAGES], [SCORES], AUTOMATIC, ["GPU.0", "CPU"]).limit == 1
    # Asked for by number, it batches wherever the model can.
    assert batchability([IMAGES], [SCORES], ON, ["GPU.0"]).limit == 8
    fixed = _tensor("input", (1, 1), (3, 3))
    assert batchability([fixed], [SCORES], AUTOMATIC, ["CPU"]).limit == 1


def test_a_maximum_of_one_is_off() -> None:
    assert batchability([IMAGES], [SCORES], BatchingSettings(1)).limit == 1


def test_the_oldest_request_always_goes_first_and_later_ones_join_in_order() -> None:
    waiting = [Waiting(1), Waiting(2), Waiting(1), Waiting(1)]
    assert next_batch(waiting, 8) == [0, 1, 2, 3]
    assert next_batch(waiting, 3) == [0, 1]
    assert next_batch(waiting, 4) == [0, 1, 2]


def test_a_request_that_does_not_fit_is_skipped_and_a_smaller_later_one_joins() -> None:
    waiting = [Waiting(2), Waiting(3), Waiting(1)]
    assert next_batch(waiting, 4) == [0, 2]


def test_only_requests_of_the_heads_shape_join() -> None:
    other = ((3, 96, 96),)
    waiting = [Waiting(1), Waiting(1, other), Waiting(1), Waiting(1, other)]
    assert next_batch(waiting, 8) == [0, 2]
    assert next_batch(waiting[1:], 8) == [0, 2]


def test_a_request_that_cannot_batch_runs_alone() -> None:
    assert next_batch([Waiting(None), Waiting(1)], 8) == [0]
    assert next_batch([Waiting(1), Waiting(None), Waiting(1)], 8) == [0, 2]
    assert next_batch([Waiting(8), Waiting(1)], 8) == [0]
    assert next_batch([], 8) == []


def test_a_requests_rows_are_the_first_dimension_its_inputs_share() -> None:
    assert rows_of([(2, 3), (2, 5)]) == 2
    assert rows_of([(2, 3), (1, 5)]) is None
    assert rows_of([()]) is None
    assert rows_of([(0, 3)]) is None
