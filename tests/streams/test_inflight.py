"""Batches in flight: computed as they come, finished in the order they came, bounded."""

from __future__ import annotations

import asyncio

import pytest

from streams.inflight import InFlight


def run(coroutine):
    return asyncio.run(coroutine)


def test_batches_finish_in_submission_order_even_when_a_later_one_computes_faster():
    async def main() -> list[int]:
        finished: list[int] = []
        in_flight = InFlight(depth=3)

        async def compute(n: int, delay: float) -> int:
            await asyncio.sleep(delay)
            return n

        async def finish(n: int) -> None:
            finished.append(n)

        for n, delay in [(1, 0.05), (2, 0.0), (3, 0.02)]:
            await in_flight.submit(lambda n=n, d=delay: compute(n, d), finish)
        await in_flight.drain()
        return finished

    assert run(main()) == [1, 2, 3]


def test_the_next_batch_computes_while_the_last_one_is_finishing():
    async def main() -> list[str]:
        log: list[str] = []
        in_flight = InFlight(depth=2)
        second_started = asyncio.Event()

        async def compute(n: int) -> int:
            log.append(f"compute {n}")
            if n == 2:
                second_started.set()
            return n

        async def finish(n: int) -> None:
            if n == 1:
                await asyncio.wait_for(second_started.wait(), 1.0)  # overlaps batch 2
            log.append(f"finish {n}")

        await in_flight.submit(lambda: compute(1), finish)
        await in_flight.submit(lambda: compute(2), finish)
        await in_flight.drain()
        return log

    assert run(main()) == ["compute 1", "compute 2", "finish 1", "finish 2"]


def test_no_more_than_depth_batches_are_unfinished():
    async def main() -> int:
        in_flight = InFlight(depth=2)
        gate = asyncio.Event()
        most = 0

        async def finish(_n: int) -> None:
            await gate.wait()

        for n in range(2):
            await in_flight.submit(lambda n=n: asyncio.sleep(0, n), finish)
            most = max(most, len(in_flight))
        third = asyncio.ensure_future(in_flight.submit(lambda: asyncio.sleep(0, 2), finish))
        await asyncio.sleep(0.05)
        assert not third.done(), "a third batch waits for the first to finish"
        gate.set()
        await third
        await in_flight.drain()
        return most

    assert run(main()) == 2


def test_a_failed_batch_raises_and_the_batches_after_it_are_not_finished():
    async def main() -> list[int]:
        finished: list[int] = []
        in_flight = InFlight(depth=3)

        async def finish(n: int) -> None:
            if n == 1:
                raise ConnectionError("broker gone")
            finished.append(n)

        await in_flight.submit(lambda: asyncio.sleep(0, 1), finish)
        await in_flight.submit(lambda: asyncio.sleep(0, 2), finish)
        with pytest.raises(ConnectionError, match="broker gone"):
            await in_flight.drain()
        return finished

    assert run(main()) == [], "batch 2 must not be finished (acknowledged) after batch 1 failed"


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(depth=0)
