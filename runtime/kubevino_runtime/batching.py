"""Dynamic batching: which waiting requests an engine may run as one inference.

Pure rules, no OpenVINO: whether a model version can take batches at all, and which of the
requests waiting for an infer request form the next one. The engine (``engine.LoadedVersion``)
applies them.

A version can batch when every input's and every output's first dimension is dynamic (the
model's own, or one ``batch_size``/``shape`` made dynamic): requests then join along that
dimension and each gets back its own rows. Only requests whose other dimensions agree join, in
arrival order: a request is never overtaken by a later one of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from kubevino_runtime.served import TensorInfo

# How far past the head of the queue a batch looks for requests of the head's shape: keeps
# forming a batch cheap when many requests of other shapes wait.
SCAN_LIMIT_FACTOR: Final = 4


# What --max_dynamic_batch auto turns on: measured to win on CPU (bench/README.md, "Dynamic
# batching"); on other devices nothing is measured yet, so nothing changes there.
AUTOMATIC_MAX_BATCH: Final = 8
AUTOMATIC_DEVICES: Final = frozenset({"CPU"})


@dataclass(frozen=True)
class BatchingSettings:
    """``--max_dynamic_batch`` and ``--dynamic_batch_delay_us``; a maximum of 1 is off, and
    ``automatic`` (the default) is AUTOMATIC_MAX_BATCH where it was measured to win."""

    max_batch: int = 1
    max_delay_us: int = 0
    automatic: bool = False

    @property
    def enabled(self) -> bool:
        return self.automatic or self.max_batch > 1


NO_BATCHING: Final = BatchingSettings()
AUTOMATIC: Final = BatchingSettings(AUTOMATIC_MAX_BATCH, automatic=True)


@dataclass(frozen=True)
class Batchability:
    """Whether a version can batch, and the most rows one inference may hold."""

    limit: int  # 1: no batching
    reason: str  # why not, or what limits it

    def as_json(self) -> dict[str, object]:
        return {"maxBatch": self.limit, "reason": self.reason}


def batchability(
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    settings: BatchingSettings,
    execution_devices: Sequence[str] = ("CPU",),
) -> Batchability:
    if not settings.enabled:
        return Batchability(1, "dynamic batching is off (--max_dynamic_batch 1)")
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for info in tensors:
            if not info.shape:
                return Batchability(1, f"{kind} {info.name} is a scalar: no batch dimension")
            if info.shape[0] != -1:
                return Batchability(
                    1,
                    f"{kind} {info.name}'s first dimension is fixed at {info.shape[0]}: give the "
                    "model a dynamic batch (batch_size -1 or a range such as 1:8)",
                )
    devices = {device.split(".")[0] for device in execution_devices}
    if settings.automatic and not (devices and devices <= AUTOMATIC_DEVICES):
        return Batchability(
            1,
            f"off by default on {', '.join(sorted(devices)) or 'this device'}: measured to win "
            "on CPU only; --max_dynamic_batch N turns it on",
        )
    limit = settings.max_batch
    for info in inputs:
        high = info.bounds[0][1]
        if high is not None and high < limit:
            limit = high
    if limit < 2:
        return Batchability(1, "the model's batch dimension allows at most 1")
    by = " (--max_dynamic_batch auto)" if settings.automatic else ""
    return Batchability(limit, f"up to {limit} rows per inference{by}")


class Waiting(Protocol):
    """A request waiting for an infer request, as batching sees it."""

    @property
    def rows(self) -> int | None:
        """Its size along the batch dimension; None if it cannot join a batch."""

    @property
    def shape_key(self) -> tuple[tuple[int, ...], ...]:
        """Every input's shape past the batch dimension: requests join only when equal."""


W = TypeVar("W", bound=Waiting)


def next_batch(waiting: Sequence[W], limit: int) -> list[int]:
    """Positions in ``waiting`` of the requests the next inference runs: the oldest, and after
    it, in order, those of its shape that still fit within ``limit`` rows."""
    if not waiting:
        return []
    head = waiting[0]
    chosen = [0]
    if limit < 2 or head.rows is None or head.rows >= limit:
        return chosen
    rows = head.rows
    for position in range(1, min(len(waiting), limit * SCAN_LIMIT_FACTOR)):
        candidate = waiting[position]
        if candidate.rows is None or candidate.shape_key != head.shape_key:
            continue
        if rows + candidate.rows > limit:
            continue
        chosen.append(position)
        rows += candidate.rows
        if rows == limit:
            break
    return chosen


def rows_of(shapes: Sequence[tuple[int, ...]]) -> int | None:
    """A request's batch size: the first dimension its inputs share; None when they differ
    (such a request runs alone)."""
    if not shapes or any(not shape for shape in shapes):
        return None
    first = {shape[0] for shape in shapes}
    if len(first) != 1:
        return None
    (rows,) = first
    return rows if rows > 0 else None
