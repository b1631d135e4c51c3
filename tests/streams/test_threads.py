"""Per-thread CPU: a busy named thread shows up under its name, the main thread as the loop."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from streams.threads import EVENT_LOOP, thread_cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_busy_pool_thread_is_counted_under_its_pool_name():
    with ThreadPoolExecutor(1, thread_name_prefix="monitor-test.busy") as pool:
        pool.submit(spin, 0.3).result()
        used = thread_cpu_seconds()
    assert used["monitor-test.busy"] >= 0.25
    assert EVENT_LOOP in used


def test_threads_of_one_pool_add_up():
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        spin(0.15)

    with ThreadPoolExecutor(2, thread_name_prefix="detector-test") as pool:
        for future in [pool.submit(work) for _ in range(2)]:
            future.result()
        used = thread_cpu_seconds()
    assert used["detector-test"] >= 0.25, "both threads' time, under one name"
