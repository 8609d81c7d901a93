"""Shared-memory slots: where a front end puts a request's tensors for the engine, and where the
engine puts the outputs back.

A slot is an anonymous shared memory file (memfd) both processes map. A front end creates it
and hands its descriptor to the engine once, with the first request that uses it; after that
only the slot's number and size travel. Ownership alternates: the front end writes the inputs
and sends the request; the engine binds those bytes as the infer request's input tensors,
binds or writes the outputs after them and answers; the front end reads the outputs and frees
the slot for its next request. Whichever side needs more room grows the file (``ftruncate``)
and says the new size; the other side maps it again. A slot never shrinks while shared (the
other side's mapping would point past the end): a slot grown past ``KEEP_BYTES`` is dropped
after its request instead and a new one made when needed.

memfd rather than ``/dev/shm`` names: nothing to unlink, nothing left behind by a killed
process, and no tmpfs size limit (a container's ``/dev/shm`` is 64 MiB by default).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from kubevino_runtime.served import TensorInfo

ALIGNMENT = 64  # a cache line: OpenVINO's CPU plugin reads aligned tensors without a copy
KEEP_BYTES = 16 * 1024 * 1024  # larger slots are not kept between requests
_PAGE = mmap.PAGESIZE


def aligned(offset: int) -> int:
    return -(-offset // ALIGNMENT) * ALIGNMENT


def layout(sizes: Iterable[int], start: int = 0) -> tuple[list[int], int]:
    """Offsets of tensors of the given byte sizes placed one after another from ``start``,
    each aligned, and the end of the last one."""
    offsets = []
    end = start
    for size in sizes:
        offset = aligned(end)
        offsets.append(offset)
        end = offset + size
    return offsets, end


def nbytes(info: TensorInfo, shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * info.element_type.itemsize


def static_output_bytes(outputs: Sequence[TensorInfo]) -> list[int] | None:
    """The outputs' sizes when every one is static (the front end reserves room for them and
    the engine binds them in place), else None (the engine writes them after inference)."""
    if not all(info.is_static for info in outputs):
        return None
    return [nbytes(info, info.shape) for info in outputs]


class Slot:
    """One shared memory file mapped in this process."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = 0
        self._map: mmap.mmap | None = None
        self.map(size)

    @classmethod
    def create(cls, size: int, name: str = "kubevino-slot") -> Slot:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        size = _rounded(size)
        os.ftruncate(fd, size)
        return cls(fd, size)

    def map(self, size: int) -> None:
        """Map ``size`` bytes (the other side grew the file to that)."""
        if size == self.size:
            return
        # The old mapping is only dropped, never closed: an infer request or a response may
        # still hold a view of it, and the pages stay valid until the last view is gone.
        self._map = mmap.mmap(self.fd, size) if size else None
        self.size = size

    def grow(self, size: int) -> bool:
        """Make room for ``size`` bytes; True when the file grew (the other side must map it
        again)."""
        if size <= self.size:
            return False
        size = _rounded(max(size, 2 * self.size))
        os.ftruncate(self.fd, size)
        self.map(size)
        return True

    def view(self, offset: int, dtype: np.dtype[Any], shape: Sequence[int]) -> npt.NDArray[Any]:
        """A writable array over the slot's bytes (no copy)."""
        count = int(np.prod(shape, dtype=np.int64))
        if self._map is None:
            return np.empty(shape, dtype)
        return np.frombuffer(self._map, dtype, count, offset).reshape(shape)

    def close(self) -> None:
        self._map = None
        os.close(self.fd)


def _rounded(size: int) -> int:
    return max(_PAGE, -(-size // _PAGE) * _PAGE)
