"""The engine process's side of the front ends: it runs their requests on the engines (one
``LoadedVersion`` per model version and device, compiled once in this process) and tells them
what is served.

A request arrives as a record naming the engine and a shared memory slot; its inputs are bound
in place as the infer request's input tensors (``ov.Tensor`` over the slot, no copy) and static
outputs are bound the same way right after them, so OpenVINO writes the answer where the front
end reads it. Dynamic outputs are copied into the slot after inference (growing it if needed).

A version the registry retires may still be named by a front end that resolved it before it
learnt of the retirement (a request still reading its body). So each connected front end holds
every retired version until it says it released it; only then can the registry's drain of that
version finish and the version be closed.

A generative model (``--task``) is served here too: each front end's OpenAI calls run on the
one pipeline (``generative.engine_calls``), its state travels in the catalogue.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import openvino as ov

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
from kubevino_runtime.engine import Job, LoadedVersion
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.generative.engine_calls import GenerativeCalls
from kubevino_runtime.generative.facts import Answers
from kubevino_runtime.models import ModelRegistry
from kubevino_runtime.slots import Slot, layout, nbytes, static_output_bytes

log = logging.getLogger("kubevino.engine")
PUBLISH_SECONDS = 0.2


class Models(Protocol):
    """What readiness is judged on: the registry's versions, or the generative model."""

    def ready(self) -> bool: ...

    def not_ready_reasons(self) -> list[str]: ...

    def stuck_reasons(self) -> list[str]: ...


@dataclass
class _FrontEnd:
    index: int
    channel: Channel | None = None
    slots: dict[int, Slot] = field(default_factory=dict)
    said_hello: bool = False
    holds: set[int] = field(default_factory=set)  # retired engines this front end may still use
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    generative: GenerativeCalls | None = None


class EngineHost:
    """Serves the front ends' requests from the registry's engines."""

    def __init__(
        self,
        registry: ModelRegistry,
        front_end_count: int,
        describe: Callable[[], dict[str, Any]],
        *,
        models: Models | None = None,
        answers: Answers | None = None,
    ) -> None:
        self.registry = registry
        self.models: Models = models or registry
        self.answers = answers  # the generative model's, where there is one
        self.describe = describe  # what this process adds to the catalogue (diagnostics, metrics)
        self.front_ends = [_FrontEnd(index) for index in range(front_end_count)]
        self.engines: dict[int, LoadedVersion] = {}
        self.stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._published: dict[str, Any] | None = None

    def connect(self, index: int, channel_socket: Any) -> None:
        front_end = self.front_ends[index]

        def on_record(record: Record) -> None:
            self._on_record(front_end, record)

        def on_closed() -> None:
            self._disconnected(front_end)

        front_end.channel = Channel(channel_socket, on_record, on_closed)
        if self.answers is not None:
            front_end.generative = GenerativeCalls(self.answers, front_end.channel)

    # --- the catalogue -----------------------------------------------------------------------

    def ready(self) -> bool:
        """Every front end serves and every configured version is loaded."""
        return (
            not self.stopping
            and all(front_end.said_hello for front_end in self.front_ends)
            and self.models.ready()
        )

    def catalogue(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for name, served in self.registry.models.items():
            models[name] = {
                "versions": {str(n): _describe(v) for n, v in served.loaded.items()},
                "status": {str(n): [s.state, s.error] for n, s in served.status.items()},
            }
        return {
            "ready": self.ready(),
            "refreshedOnce": self.registry.refreshed_once,
            "shuttingDown": self.stopping,
            "notReady": self.models.not_ready_reasons(),
            "stuck": self.models.stuck_reasons(),
            "models": models,
            **self.describe(),
        }

    def hold_for_front_ends(self, version: LoadedVersion) -> None:
        """The registry retires ``version``: every connected front end may still name it, so
        it stays usable until each has said it released it."""
        for front_end in self.front_ends:
            if front_end.channel is not None and not front_end.channel.closed:
                front_end.holds.add(version.engine_id)
                version.hold()
        self.engines[version.engine_id] = version

    def publish(self) -> None:
        """Send the catalogue to every front end if it changed."""
        for version in self.registry.loaded_versions():
            self.engines.setdefault(version.engine_id, version)
        for engine_id, version in list(self.engines.items()):
            if version.closed:
                del self.engines[engine_id]
        content = self.catalogue()
        if content == self._published:
            return
        self._published = content
        for front_end in self.front_ends:
            if front_end.channel is not None:
                front_end.channel.send(Catalogue({**content, "retired": sorted(front_end.holds)}))

    async def keep_publishing(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_SECONDS)

    # --- records -----------------------------------------------------------------------------

    def _on_record(self, front_end: _FrontEnd, record: Record) -> None:
        if isinstance(record, Request):
            self._on_request(front_end, record)
        elif isinstance(record, Hello):
            front_end.said_hello = True
            self.publish()
        elif isinstance(record, Released):
            self._on_released(front_end, record.engine_id)
        elif isinstance(record, Generative) and front_end.generative is not None:
            front_end.generative.on_record(record)

    def _on_released(self, front_end: _FrontEnd, engine_id: int) -> None:
        if engine_id not in front_end.holds:
            return
        front_end.holds.discard(engine_id)
        version = self.engines.get(engine_id)
        if version is not None:
            version.release()
        self._published = None  # this front end's list of retired engines changed

    def _disconnected(self, front_end: _FrontEnd) -> None:
        if front_end.generative is not None:
            front_end.generative.cancel_all()
        for engine_id in list(front_end.holds):
            self._on_released(front_end, engine_id)
        for slot in front_end.slots.values():
            slot.close()
        front_end.slots.clear()
        front_end.gone.set()

    def _on_request(self, front_end: _FrontEnd, request: Request) -> None:
        if request.slot_fd is not None:
            old = front_end.slots.pop(request.slot, None)
            if old is not None:
                old.close()
            front_end.slots[request.slot] = Slot(request.slot_fd, request.slot_size)
        slot = front_end.slots[request.slot]
        slot.map(request.slot_size)
        task = asyncio.get_running_loop().create_task(self._serve(front_end, request, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, front_end: _FrontEnd, request: Request, slot: Slot) -> None:
        version = self.engines.get(request.engine_id)
        try:
            if version is None:
                raise ServingError(ErrorKind.UNAVAILABLE, "the model version was unloaded; retry")
            outputs = await _infer_in_slot(version, request.inputs, slot)
        except ServingError as error:
            answer: Record = Failed(request.request_id, error.kind, error.message)
        except Exception as error:  # a bug here must answer, not leave the client waiting
            log.exception("request %d failed", request.request_id)
            answer = Failed(request.request_id, ErrorKind.INTERNAL, f"inference failed: {error}")
        else:
            answer = Done(request.request_id, request.slot, slot.size, outputs)
        if front_end.channel is not None:
            front_end.channel.send(answer)

    # --- shutting down -----------------------------------------------------------------------

    async def front_ends_gone(self) -> None:
        await asyncio.gather(*(front_end.gone.wait() for front_end in self.front_ends))

    def close(self) -> None:
        for front_end in self.front_ends:
            if front_end.channel is not None and not front_end.channel.closed:
                front_end.channel.close()
            self._disconnected(front_end)


async def _infer_in_slot(version: LoadedVersion, inputs: list[Placed], slot: Slot) -> list[Placed]:
    """Run ``version`` on the inputs in ``slot``; the outputs land in the slot after them."""
    views = []
    input_end = 0
    for placed in inputs:
        info = version.inputs[placed.index]
        views.append((placed.index, slot.view(placed.offset, info.element_type, placed.shape)))
        input_end = max(input_end, placed.offset + nbytes(info, placed.shape))
    sizes = static_output_bytes(version.outputs)
    bound: list[Placed] = []
    if sizes is not None:
        offsets, end = layout(sizes, input_end)
        if end > slot.size:
            raise ServingError(ErrorKind.INTERNAL, "the front end left no room for the outputs")
        bound = [
            Placed(index, info.shape, offset)
            for index, (info, offset) in enumerate(zip(version.outputs, offsets, strict=True))
        ]

    def prepare(infer_request: ov.InferRequest) -> None:
        for index, view in views:
            infer_request.set_input_tensor(index, ov.Tensor(view, shared_memory=True))
        for placed in bound:
            info = version.outputs[placed.index]
            out = slot.view(placed.offset, info.element_type, placed.shape)
            infer_request.set_output_tensor(placed.index, ov.Tensor(out, shared_memory=True))

    def place(tensors: Sequence[npt.NDArray[Any]]) -> list[Placed]:
        """Copy outputs whose shapes are known only now into the slot, after the inputs."""
        offsets, end = layout([tensor.nbytes for tensor in tensors], input_end)
        slot.grow(end)
        placed = []
        for index, (tensor, offset) in enumerate(zip(tensors, offsets, strict=True)):
            target: npt.NDArray[Any] = slot.view(offset, tensor.dtype, tensor.shape)
            np.copyto(target, tensor, casting="no")
            placed.append(Placed(index, tuple(tensor.shape), offset))
        return placed

    def collect(infer_request: ov.InferRequest) -> list[Placed]:
        if sizes is not None:
            return bound
        return place([infer_request.get_output_tensor(i).data for i in range(len(version.outputs))])

    inputs_by_index = [view for _, view in sorted(views, key=lambda pair: pair[0])]
    return await version.run(Job(prepare, collect, inputs_by_index, place))


def _describe(version: LoadedVersion) -> dict[str, Any]:
    return {
        "engine": version.engine_id,
        "inputs": [info.as_json() for info in version.inputs],
        "outputs": [info.as_json() for info in version.outputs],
        "targetDevice": version.target_device,
        "executionDevices": list(version.execution_devices),
        "streams": version.streams,
        "nireq": version.nireq,
        "optimalNireq": version.optimal_nireq,
        "enginePid": os.getpid(),
    }
