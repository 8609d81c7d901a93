"""One run at a time per key, and bursts folded into one run.

A model's status is recomputed on every event about its Deployment and pods; a rollout sends
them in bursts. Runs for one key never overlap, and every call that arrives while a run waits
for its turn joins that run (arguments merged) instead of queueing its own: a burst of N events
costs at most two runs, the second one seeing everything the burst announced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")


class Coalescer(Generic[K, A]):
    def __init__(self, work: Callable[[K, A], Awaitable[None]], merge: Callable[[A, A], A]) -> None:
        self._work = work
        self._merge = merge
        self._locks: dict[K, asyncio.Lock] = {}
        # Per key: the run waiting for its turn (its merged arguments and its outcome).
        self._waiting: dict[K, tuple[A, asyncio.Future[None]]] = {}
        self._runs: set[asyncio.Task[None]] = set()

    async def run(self, key: K, args: A) -> None:
        """Return once a run that started after this call has finished (or raise its error).

        The run is a task of its own: a caller that goes away (a cancelled handler) leaves it,
        and whoever joined it, undisturbed.
        """
        waiting = self._waiting.get(key)
        if waiting is not None:
            outcome = waiting[1]
            self._waiting[key] = (self._merge(waiting[0], args), outcome)
        else:
            outcome = asyncio.get_running_loop().create_future()
            self._waiting[key] = (args, outcome)
            task = asyncio.create_task(self._turn(key, outcome))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
        await asyncio.shield(outcome)

    async def _turn(self, key: K, outcome: asyncio.Future[None]) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                merged, _ = self._waiting.pop(key)
                await self._work(key, merged)
        except BaseException as error:  # the callers get it, as if they had run it
            outcome.set_exception(error)
            outcome.exception()  # retrieved here too: callers that left must not warn
        else:
            outcome.set_result(None)
        finally:
            self._drop_idle_lock(key, lock)

    @asynccontextmanager
    async def held(self, key: K) -> AsyncIterator[None]:
        """No run for ``key`` starts inside this block; calls made meanwhile fold into one run
        that the first call after the block joins (it starts before anything else can)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            self._drop_idle_lock(key, lock)

    def _drop_idle_lock(self, key: K, lock: asyncio.Lock) -> None:
        """Forget a key's lock once nothing holds or waits for it (models come and go)."""
        if key not in self._waiting and not lock.locked():
            self._locks.pop(key, None)

    def idle(self) -> bool:
        return not self._locks and not self._waiting
