"""The engine process's side of one front end's generative calls.

A front end has parsed and checked an OpenAI request and sends it as a CALL record; here it
runs on the one pipeline every front end shares (``Answers``: continuous batching for text
generation), each reply document going back as a REPLY record as soon as it is produced (a
streamed answer token by token), then END, or FAILED with OpenAI's error fields. A CANCEL (the
front end's client went away) stops the generation, which frees its sequence in the pipeline.

A non-streamed answer produces nothing until it is complete, so while it generates the engine
sends a PROGRESS record now and then: the front end answers it by checking whether its client
is still connected (aiohttp tells a handler nothing when its client leaves).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from kubevino_runtime.channel import Channel, Fragments, Generative, Step, generative_records
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.generative.facts import Answers, Endpoint
from kubevino_runtime.generative.openai_protocol import error_fields

log = logging.getLogger("kubevino.engine")
PROGRESS_SECONDS = 0.2  # how often a front end is asked to look at its waiting client


class GenerativeCalls:
    def __init__(self, answers: Answers, channel: Channel) -> None:
        self.answers = answers
        self.channel = channel
        self._fragments = Fragments()
        self._running: dict[int, asyncio.Task[None]] = {}

    def on_record(self, record: Generative) -> None:
        whole = self._fragments.join(record)
        if whole is None:
            return
        if whole.step is Step.CALL:
            task = asyncio.get_running_loop().create_task(self._run(whole.call_id, whole.data))
            self._running[whole.call_id] = task
            task.add_done_callback(lambda _: self._running.pop(whole.call_id, None))
        elif whole.step is Step.CANCEL:
            running = self._running.get(whole.call_id)
            if running is not None:
                running.cancel()  # the answer's generator stops its generation as it unwinds

    def cancel_all(self) -> None:
        """The front end is gone: nobody is left to read these answers."""
        for task in self._running.values():
            task.cancel()

    def _send(self, call_id: int, step: Step, document: Any = None) -> None:
        data = b"" if document is None else json.dumps(document).encode()
        for record in generative_records(call_id, step, data):
            self.channel.send(record)

    async def _run(self, call_id: int, data: bytes) -> None:
        last_progress = time.monotonic()

        def client_gone() -> bool:
            # Only the front end can tell; it cancels the call if so.
            nonlocal last_progress
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                self._send(call_id, Step.PROGRESS)
            return False

        try:
            call = json.loads(data)
            replies = self.answers.answer(Endpoint(call["endpoint"]), call["document"], client_gone)
            try:
                async for reply in replies:
                    self._send(call_id, Step.REPLY, reply)
            finally:
                await replies.aclose()
        except ServingError as error:
            self._send(call_id, Step.FAILED, error_fields(error))
        except Exception as error:  # a bug here must answer, not leave the client waiting
            log.exception("generative call %d failed", call_id)
            failure = ServingError(ErrorKind.INTERNAL, f"generation failed: {error}")
            self._send(call_id, Step.FAILED, error_fields(failure))
        else:
            self._send(call_id, Step.END)
