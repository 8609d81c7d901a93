"""Status refreshes: never two at once for one model, and a burst folded into one run."""

from __future__ import annotations

import asyncio

import pytest

from kubevino_operator.coalesce import Coalescer


def _newest(_: int, newer: int) -> int:
    return newer


def test_a_burst_while_one_runs_costs_one_more_run_with_the_newest_arguments() -> None:
    runs: list[tuple[str, int]] = []
    overlapping = 0
    active = 0

    async def work(key: str, value: int) -> None:
        nonlocal active, overlapping
        active += 1
        overlapping = max(overlapping, active)
        await asyncio.sleep(0.01)
        runs.append((key, value))
        active -= 1

    async def scenario() -> Coalescer[str, int]:
        coalescer: Coalescer[str, int] = Coalescer(work, _newest)
        first = asyncio.create_task(coalescer.run("m", 1))
        await asyncio.sleep(0)  # the first run has started
        burst = [asyncio.create_task(coalescer.run("m", n)) for n in range(2, 12)]
        other = asyncio.create_task(coalescer.run("other", 100))
        await asyncio.gather(first, *burst, other)
        return coalescer

    coalescer = asyncio.run(scenario())
    assert sorted(runs) == [("m", 1), ("m", 11), ("other", 100)]
    assert overlapping == 2  # "m" and "other" in parallel, never "m" twice
    assert coalescer.idle()


def test_every_caller_of_a_failed_run_sees_its_error_and_a_caller_leaving_stops_nothing() -> None:
    done: list[int] = []

    async def work(_: str, value: int) -> None:
        await asyncio.sleep(0.01)
        if value == 2:
            raise RuntimeError("API server said no")
        done.append(value)

    async def scenario() -> None:
        coalescer: Coalescer[str, int] = Coalescer(work, _newest)
        first = asyncio.create_task(coalescer.run("m", 1))
        await asyncio.sleep(0)
        leaving = asyncio.create_task(coalescer.run("m", 3))
        failing = [asyncio.create_task(coalescer.run("m", 2)) for _ in range(3)]
        await asyncio.sleep(0)
        leaving.cancel()
        await first
        for call in failing:
            with pytest.raises(RuntimeError, match="said no"):
                await call
        assert coalescer.idle()

    asyncio.run(scenario())
    assert done == [1]


def test_calls_made_while_held_fold_into_the_first_run_after() -> None:
    runs: list[int] = []

    async def work(_: str, value: int) -> None:
        runs.append(value)

    async def scenario() -> None:
        coalescer: Coalescer[str, int] = Coalescer(work, lambda a, b: a + b)
        async with coalescer.held("m"):
            early = [asyncio.create_task(coalescer.run("m", n)) for n in (1, 2)]
            await asyncio.sleep(0.01)
            assert runs == []  # nothing runs while held
        await coalescer.run("m", 10)
        await asyncio.gather(*early)
        assert coalescer.idle()

    asyncio.run(scenario())
    assert runs == [13]
