"""What a served model version looks like to the protocols, wherever its compiled model lives.

A version is served either by the engine in this process (``engine.LoadedVersion``) or, with
several front ends, by the engine process through shared memory (``frontend.RemoteVersion``).
Both describe their tensors the same way and validate a request the same way, here, so a
client's mistake is refused before any tensor reaches an engine.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubevino_runtime.errors import invalid
from kubevino_runtime.tensors import NUMPY_TO_KSERVE


@dataclass(frozen=True)
class TensorInfo:
    name: str
    element_type: np.dtype[Any]
    shape: tuple[int, ...]  # -1 for a dynamic dimension
    # Each dimension's smallest and largest size (None: unbounded). A dynamic dimension may
    # still be bounded (``--shape "(1:8,3)"``, an IR's ``1..8``), which metadata's -1 does not
    # show; OpenVINO refuses a tensor outside the bounds only when it infers.
    bounds: tuple[tuple[int, int | None], ...]

    @property
    def is_static(self) -> bool:
        return -1 not in self.shape

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.bounds) and all(
            low <= got and (high is None or got <= high)
            for (low, high), got in zip(self.bounds, shape, strict=True)
        )

    def shape_text(self) -> str:
        """The accepted shape, a bounded dynamic dimension as ``low..high``, an unbounded ``?``."""
        dims = [
            str(low) if low == high else f"{low}..{high}" if high is not None else "?"
            for low, high in self.bounds
        ]
        return f"[{', '.join(dims)}]"

    def as_json(self) -> list[Any]:
        return [self.name, self.element_type.str, list(self.shape), [list(b) for b in self.bounds]]

    @classmethod
    def from_json(cls, raw: list[Any]) -> TensorInfo:
        name, dtype, shape, bounds = raw
        return cls(name, np.dtype(dtype), tuple(shape), tuple((low, high) for low, high in bounds))


class ServedVersion(ABC):
    """One model version as the protocols see it: its tensors, validation and inference."""

    def __init__(
        self, name: str, version: int, inputs: list[TensorInfo], outputs: list[TensorInfo]
    ) -> None:
        self.name = name
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.input_by_name = {info.name: info for info in inputs}
        self.in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()

    # What the diagnostics and metrics report about the compiled model behind this version.
    target_device: str
    execution_devices: list[str]
    streams: int
    nireq: int
    optimal_nireq: int

    @property
    @abstractmethod
    def active(self) -> int:
        """Infer requests bound to user requests right now."""

    @property
    @abstractmethod
    def queue_depth(self) -> int:
        """Requests waiting for an idle infer request."""

    @abstractmethod
    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Run one inference; the caller has validated ``inputs``."""

    def validate(self, inputs: dict[str, npt.NDArray[Any]]) -> None:
        missing = sorted(set(self.input_by_name) - set(inputs))
        unknown = sorted(set(inputs) - set(self.input_by_name))
        if unknown:
            raise invalid(
                f"model {self.name} has no input {', '.join(unknown)}; its inputs are "
                f"{', '.join(self.input_by_name)}"
            )
        if missing:
            raise invalid(f"model {self.name} needs input {', '.join(missing)}")
        for name, array in inputs.items():
            info = self.input_by_name[name]
            if array.dtype != info.element_type:
                raise invalid(
                    f"input {name} of model {self.name} expects {_kind(info.element_type)}, "
                    f"got {_kind(array.dtype)}"
                )
            if not info.accepts(tuple(array.shape)):
                bounded = "" if info.is_static else f" ({info.shape_text()})"
                raise invalid(
                    f"input {name} of model {self.name} expects shape {list(info.shape)}"
                    f"{bounded}, got {list(array.shape)}"
                )

    @contextmanager
    def held(self) -> Iterator[ServedVersion]:
        """Keep this version from being released while a request that resolved it still reads
        its body: a newer version may replace it meanwhile, and the request must still run."""
        self.hold()
        try:
            yield self
        finally:
            self.release()

    def hold(self) -> None:
        """Count one more user of this version (it is not released while any remain)."""
        self.in_flight += 1
        self._drained.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._drained.set()

    async def drained(self) -> None:
        await self._drained.wait()


def _kind(dtype: np.dtype[Any]) -> str:
    return NUMPY_TO_KSERVE.get(dtype, str(dtype))
