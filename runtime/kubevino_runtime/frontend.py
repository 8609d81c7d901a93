"""A front end's view of the engine process: the versions it serves (from its catalogue) and
inference through shared memory slots.

A front end only speaks the protocols and validates; ``RemoteVersion.infer`` copies the
validated inputs into a slot (the one copy a request's tensors make on the way in, as the
in-process engine copies them into its infer request), sends one small record and awaits the
answer; the outputs are read from the same slot. A generative model's calls travel as
``Generative`` records, handled by ``generative.remote``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kubevino_runtime.channel import (
    Catalogue,
    Channel,
    Done,
    Failed,
    Generative,
    Hello,
    Placed,
    Record,
    Released,
    Request,
)
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.repository import ModelConfig
from kubevino_runtime.served import ServedVersion, TensorInfo
from kubevino_runtime.slots import KEEP_BYTES, Slot, layout, nbytes, static_output_bytes
from kubevino_runtime.versions import ServedModel, VersionLookup, VersionStatus

log = logging.getLogger("kubevino.frontend")


class GenerativeRecords(Protocol):
    """Whoever handles this front end's generative calls (``generative.remote``)."""

    def on_record(self, record: Generative) -> None: ...

    def engine_lost(self) -> None: ...


@dataclass
class _Pending:
    future: asyncio.Future[Done]
    slot: int
    abandoned: bool = False  # its client went away; the answer only frees the slot


class EngineLink:
    """This front end's channel to the engine process and its slots."""

    def __init__(self, sock: socket.socket, on_lost: Callable[[], None]) -> None:
        self.registry = RemoteRegistry(self)
        self.catalogue: dict[str, Any] = {}
        self.received = asyncio.Event()  # the first catalogue arrived
        self._on_lost = on_lost
        self._slots: list[Slot | None] = []
        self._free: list[int] = []
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._released: set[int] = set()
        self.releasing: set[asyncio.Task[None]] = set()
        self.generative: GenerativeRecords | None = None
        self.channel = Channel(sock, self._on_record, self._lost)

    def hello(self) -> None:
        self.channel.send(Hello())

    def _lost(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(
                    ServingError(ErrorKind.UNAVAILABLE, "the engine process ended; retry")
                )
        if self.generative is not None:
            self.generative.engine_lost()
        self._on_lost()

    def _on_record(self, record: Record) -> None:
        if isinstance(record, Done | Failed):
            pending = self._pending.get(record.request_id)
            if pending is None:
                return
            if isinstance(record, Failed):
                self._pending.pop(record.request_id)
                self._free_slot(pending.slot)
                if not pending.future.done():
                    pending.future.set_exception(ServingError(record.kind, record.message))
            elif pending.abandoned:  # the engine is done with the slot: it is free now
                self._pending.pop(record.request_id)
                self._free_slot(pending.slot)
            else:
                pending.future.set_result(record)
        elif isinstance(record, Generative):
            if self.generative is not None:
                self.generative.on_record(record)
        elif isinstance(record, Catalogue):
            self.catalogue = record.content
            self.registry.apply(record.content)
            self.received.set()
            for engine_id in record.content.get("retired", []):
                self._release_when_idle(engine_id)

    def _release_when_idle(self, engine_id: int) -> None:
        if engine_id in self._released:
            return
        self._released.add(engine_id)
        version = self.registry.forget(engine_id)

        async def release() -> None:
            if version is not None:
                await version.drained()
            self.channel.send(Released(engine_id))

        task = asyncio.get_running_loop().create_task(release())
        self.releasing.add(task)
        task.add_done_callback(self.releasing.discard)

    def _take_slot(self, size: int) -> tuple[int, Slot, bool]:
        """A free slot with room for ``size`` bytes; True when the engine must be given it."""
        index = self._free.pop() if self._free else None
        if index is None:
            index = len(self._slots)
            self._slots.append(None)
        slot = self._slots[index]
        if slot is None:
            slot = Slot.create(size, f"kubevino-slot-{index}")
            self._slots[index] = slot
            return index, slot, True
        slot.grow(size)
        return index, slot, False

    def _free_slot(self, index: int) -> None:
        slot = self._slots[index]
        if slot is not None and slot.size > KEEP_BYTES:
            slot.close()  # the engine maps the next slot of this number anew
            self._slots[index] = None
        self._free.append(index)

    async def infer(
        self, version: RemoteVersion, inputs: dict[str, npt.NDArray[Any]]
    ) -> dict[str, npt.NDArray[Any]]:
        ordered = [(index, info) for index, info in enumerate(version.inputs)]
        shapes = [inputs[info.name].shape for _, info in ordered]
        offsets, end = layout(
            [nbytes(info, shape) for (_, info), shape in zip(ordered, shapes, strict=True)]
        )
        output_sizes = static_output_bytes(version.outputs)
        if output_sizes is not None:
            end = layout(output_sizes, end)[1]
        index, slot, new = self._take_slot(end)
        placed = []
        for (input_index, info), shape, offset in zip(ordered, shapes, offsets, strict=True):
            np.copyto(slot.view(offset, info.element_type, shape), inputs[info.name])
            placed.append(Placed(input_index, tuple(shape), offset))
        request_id = next(self._ids)
        future: asyncio.Future[Done] = asyncio.get_running_loop().create_future()
        pending = _Pending(future, index)
        self._pending[request_id] = pending
        request = Request(request_id, version.engine_id, index, slot.size, placed)
        self.channel.send(request, [slot.fd] if new else None)
        if self.channel.closed:
            self._pending.pop(request_id)
            raise ServingError(ErrorKind.UNAVAILABLE, "the engine process ended; retry")
        try:
            done = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The client went away, but the engine still writes into the slot until it
            # answers: the answer frees the slot (see _on_record).
            pending.abandoned = True
            raise
        self._pending.pop(request_id)
        slot.map(done.slot_size)
        try:
            return {
                version.outputs[out.index].name: slot.view(
                    out.offset, version.outputs[out.index].element_type, out.shape
                ).copy()
                for out in done.outputs
            }
        finally:
            self._free_slot(index)

    def close(self) -> None:
        self.channel.close()
        for slot in self._slots:
            if slot is not None:
                slot.close()


class RemoteVersion(ServedVersion):
    """A version whose engine runs in the engine process."""

    def __init__(self, link: EngineLink, name: str, version: int, raw: dict[str, Any]) -> None:
        super().__init__(
            name,
            version,
            [TensorInfo.from_json(item) for item in raw["inputs"]],
            [TensorInfo.from_json(item) for item in raw["outputs"]],
        )
        self.link = link
        self.engine_id = int(raw["engine"])
        self.update(raw)

    def update(self, raw: dict[str, Any]) -> None:
        self.target_device = str(raw["targetDevice"])
        self.execution_devices = list(raw["executionDevices"])
        self.streams = int(raw["streams"])
        self.nireq = int(raw["nireq"])
        self.optimal_nireq = int(raw["optimalNireq"])
        self.engine_pid = int(raw["enginePid"])

    @property
    def active(self) -> int:
        return 0  # the engine process reports its pools

    @property
    def queue_depth(self) -> int:
        return 0

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        self.hold()
        try:
            return await self.link.infer(self, inputs)
        finally:
            self.release()


class RemoteRegistry(VersionLookup[RemoteVersion]):
    """The engine's catalogue as the protocols look it up."""

    def __init__(self, link: EngineLink) -> None:
        super().__init__()
        self.link = link
        self._ready = False
        self._not_ready: list[str] = ["waiting for the engine process"]
        self._stuck: list[str] = []
        self._by_engine: dict[int, RemoteVersion] = {}

    def apply(self, content: dict[str, Any]) -> None:
        self._ready = bool(content["ready"])
        self._not_ready = list(content["notReady"])
        self._stuck = list(content["stuck"])
        self.refreshed_once = bool(content["refreshedOnce"])
        models: dict[str, ServedModel[RemoteVersion]] = {}
        for name, raw in content["models"].items():
            served: ServedModel[RemoteVersion] = ServedModel(ModelConfig(name, ""))
            for number, described in raw["versions"].items():
                version = self._by_engine.get(int(described["engine"]))
                if version is None:
                    version = RemoteVersion(self.link, name, int(number), described)
                    self._by_engine[version.engine_id] = version
                version.update(described)
                served.loaded[int(number)] = version
            for number, (state, error) in raw["status"].items():
                served.status[int(number)] = VersionStatus(state, error)
            served.wanted = set(served.loaded)
            models[name] = served
        self.models = models

    def forget(self, engine_id: int) -> RemoteVersion | None:
        """A retired engine: no new request finds it; the one returned may still be in use."""
        return self._by_engine.pop(engine_id, None)

    def ready(self) -> bool:
        return self._ready and not self.shutting_down

    def not_ready_reasons(self) -> list[str]:
        return self._not_ready

    def stuck_reasons(self) -> list[str]:
        return self._stuck

    async def drain(self) -> None:
        """Wait until no request of this front end is in flight (retired versions' requests
        are awaited by the link before it releases them)."""
        for version in list(self._by_engine.values()):
            await version.drained()
        if self.link.releasing:
            await asyncio.gather(*self.link.releasing)
