"""The generative model as a front end of ``--workers N`` serves it: its state from the engine's
catalogue, its answers from the engine process's one pipeline through the channel
(``engine_calls`` is the other side). No GenAI here: front ends stay lean.

Each call sends the checked request as a CALL record and yields the replies as they arrive, so
a streamed answer reaches the client token by token. Closing the call before its end (the
client went away) sends CANCEL, which stops the generation in the engine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

from kubevino_runtime.channel import Fragments, Generative, Step, generative_records
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.frontend import EngineLink
from kubevino_runtime.generative.facts import Endpoint, ModelFacts
from kubevino_runtime.generative.openai_protocol import error_fields, error_from_fields
from kubevino_runtime.generative.settings import Task


def _engine_gone() -> ServingError:
    return ServingError(ErrorKind.UNAVAILABLE, "the engine process ended; retry")


class RemoteGenerative:
    """``facts.GenerativeModel`` and ``facts.Answers`` of a front end, and what the data plane
    asks of a model served outside the registry."""

    def __init__(self, link: EngineLink, name: str, task: Task) -> None:
        self.link = link
        # What the front end knows before the engine's first catalogue: not loaded yet.
        self._facts = ModelFacts(name, task, 0, None, False, None, False)
        self._described: dict[str, Any] | None = None
        self._fragments = Fragments()
        self._calls: dict[int, asyncio.Queue[Generative]] = {}
        self._ids = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()
        link.generative = self

    # --- the model's state ---------------------------------------------------------------------

    def facts(self) -> ModelFacts:
        described = self.link.catalogue.get("generative")
        if described is not None and described is not self._described:
            self._described = described
            self._facts = ModelFacts.from_json(described)
        return self._facts

    def ready(self) -> bool:
        return self.link.registry.ready()  # the engine's verdict: its model and every front end

    def not_ready_reasons(self) -> list[str]:
        return self.link.registry.not_ready_reasons()

    def refresh_gauges(self) -> None:
        return None  # the engine process reports the pipeline's gauges

    # --- calls -----------------------------------------------------------------------------------

    def on_record(self, record: Generative) -> None:
        whole = self._fragments.join(record)
        if whole is not None and whole.call_id in self._calls:
            self._calls[whole.call_id].put_nowait(whole)

    def engine_lost(self) -> None:
        failed = json.dumps(error_fields(_engine_gone())).encode()
        for call_id, replies in self._calls.items():
            replies.put_nowait(Generative(call_id, Step.FAILED, failed))

    def _send(self, call_id: int, step: Step, data: bytes = b"") -> None:
        for record in generative_records(call_id, step, data):
            self.link.channel.send(record)

    async def answer(
        self, endpoint: Endpoint, document: dict[str, Any], client_gone: Callable[[], bool]
    ) -> AsyncGenerator[dict[str, Any], None]:
        call_id = next(self._ids)
        replies: asyncio.Queue[Generative] = asyncio.Queue()
        self._calls[call_id] = replies
        self._idle.clear()
        ended = False
        try:
            if self.link.channel.closed:
                raise _engine_gone()
            call = {"endpoint": endpoint.value, "document": document}
            self._send(call_id, Step.CALL, json.dumps(call).encode())
            while True:
                reply = await replies.get()
                if reply.step is Step.REPLY:
                    yield json.loads(reply.data)
                elif reply.step is Step.PROGRESS:
                    if client_gone():
                        return  # the finally below cancels the generation
                elif reply.step is Step.FAILED:
                    ended = True
                    raise error_from_fields(json.loads(reply.data))
                elif reply.step is Step.END:
                    ended = True
                    return
        finally:
            del self._calls[call_id]
            if not ended and not self.link.channel.closed:
                self._send(call_id, Step.CANCEL)
            if not self._calls:
                self._idle.set()

    async def drained(self) -> None:
        """No call of this front end is waiting for the engine."""
        await self._idle.wait()
