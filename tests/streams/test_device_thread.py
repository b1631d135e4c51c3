"""The device thread: one thread for every model run, monitors' checks ahead of batches."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from streams.device_thread import DeviceThread, let_ahead


def _blocked(thread: DeviceThread) -> tuple[threading.Event, list[str]]:
    """A thread busy with a first batch until the returned event is set; runs are logged."""
    started, release, order = threading.Event(), threading.Event(), []

    def first() -> None:
        started.set()
        release.wait(5)
        order.append("running batch")

    thread.batches.submit(first)
    assert started.wait(5)
    return release, order


def test_a_check_runs_before_batches_queued_ahead_of_it_but_after_the_run_in_progress():
    thread = DeviceThread("detector-test")
    release, order = _blocked(thread)
    later = [thread.batches.submit(order.append, f"queued batch {n}") for n in (1, 2)]
    check = thread.checks.submit(order.append, "check")
    release.set()
    check.result(5)
    for future in later:
        future.result(5)
    assert order == ["running batch", "check", "queued batch 1", "queued batch 2"]
    thread.shutdown()


def test_a_long_call_lets_waiting_checks_run_between_its_steps():
    # A CPU detector batch calls let_ahead between its parts: the checks waiting by then
    # run there, the next batch (behind it) does not.
    thread = DeviceThread("detector-test")
    order, started, queued = [], threading.Event(), threading.Event()

    def batch() -> None:
        order.append("part 1")
        started.set()
        assert queued.wait(5)
        let_ahead()
        order.append("part 2")

    running = thread.batches.submit(batch)
    assert started.wait(5)
    later = [
        thread.batches.submit(order.append, "next batch"),
        thread.checks.submit(order.append, "check 1"),
        thread.checks.submit(order.append, "check 2"),
    ]
    queued.set()
    for future in [running, *later]:
        future.result(5)
    assert order == ["part 1", "check 1", "check 2", "part 2", "next batch"]
    thread.shutdown()


def test_time_let_ahead_counts_in_its_own_lane_not_the_batch_that_let_it():
    thread = DeviceThread("detector-test")
    started, waiting = threading.Event(), threading.Event()

    def batch() -> None:
        started.set()
        assert waiting.wait(5)
        let_ahead()

    running = thread.batches.submit(batch)
    assert started.wait(5)
    check = thread.checks.submit(time.sleep, 0.2)
    waiting.set()
    running.result(5), check.result(5)
    assert thread.busy()["checks"] >= 0.2
    assert thread.busy()["batches"] < 0.1
    thread.shutdown()


def test_let_ahead_outside_a_device_thread_does_nothing():
    let_ahead()  # e.g. predict_batch in a benchmark's own thread
    thread = DeviceThread("detector-test")
    thread.let_ahead()  # not from its thread: a no-op, not a deadlock
    thread.shutdown()


def test_calls_of_one_lane_run_in_the_order_they_came():
    thread = DeviceThread("detector-test")
    release, order = _blocked(thread)
    futures = [thread.checks.submit(order.append, n) for n in range(5)]
    release.set()
    for future in futures:
        future.result(5)
    assert order == ["running batch", 0, 1, 2, 3, 4]
    thread.shutdown()


def test_a_failing_call_fails_its_own_future_and_the_thread_goes_on():
    thread = DeviceThread("detector-test")
    with pytest.raises(ZeroDivisionError):
        thread.batches.submit(lambda: 1 / 0).result(5)
    assert thread.batches.submit(lambda: "still here").result(5) == "still here"
    thread.shutdown()


def test_every_call_runs_in_one_thread_named_for_the_per_thread_cpu_table():
    thread = DeviceThread("detector-cpu")
    names = {
        lane.submit(lambda: threading.current_thread().name).result(5)
        for lane in (thread.batches, thread.checks, thread.batches)
    }
    assert names == {"detector-cpu_0"}  # streams.threads groups it as "detector-cpu"
    thread.shutdown()


def test_shutdown_runs_what_was_queued_then_refuses_more():
    thread = DeviceThread("detector-test")
    release, order = _blocked(thread)
    queued = thread.batches.submit(order.append, "queued")
    release.set()
    thread.shutdown(wait=True)
    assert queued.done() and order == ["running batch", "queued"]
    with pytest.raises(RuntimeError, match="shut down"):
        thread.checks.submit(order.append, "late")


def test_the_lanes_serve_asyncio_run_in_executor():
    thread = DeviceThread("detector-test")

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(
            loop.run_in_executor(thread.batches, sum, [1, 2]),
            loop.run_in_executor(thread.checks, max, 3, 4),
        )

    assert asyncio.run(main()) == [3, 4]
    thread.shutdown()


def test_it_counts_the_seconds_each_lane_ran_failed_calls_included():
    thread = DeviceThread("detector-test")
    assert thread.busy() == {"checks": 0.0, "batches": 0.0}
    thread.checks.submit(time.sleep, 0.05).result(5)
    with pytest.raises(ZeroDivisionError):
        thread.batches.submit(lambda: (time.sleep(0.02), 1 / 0)).result(5)
    busy = thread.busy()  # counted before the future was set
    assert 0.05 <= busy["checks"] < 1.0
    assert 0.02 <= busy["batches"] < 1.0
    thread.shutdown()
