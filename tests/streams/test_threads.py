"""Per-thread CPU: a busy named thread shows up under its name, the main thread as the loop."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from streams.threads import EVENT_LOOP, UNNAMED, CpuSampler, cpu_per_frame, thread_cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def spin(seconds: float) -> None:
    """Keep this thread on a core for ``seconds`` of its own CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(1000))  # busy work: the point is to use CPU


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


def test_cpu_per_frame_folds_thread_groups_into_what_a_reader_asks_about():
    before = {EVENT_LOOP: 1.0, "detector-cuda": 2.0, UNNAMED: 0.0, "monitor-drift.image": 0.5}
    after = {
        EVENT_LOOP: 2.0,
        "detector-cuda": 2.5,
        UNNAMED: 1.0,
        "monitor-drift.image": 0.7,
        "monitor-integrity": 0.3,
        "kafka-consumer": 0.1,
    }
    per_frame = cpu_per_frame(before, after, frames=1000)
    assert per_frame == pytest.approx(
        {
            "event loop": 1.0,
            "detector thread": 0.5,
            "unnamed (torch's)": 1.0,
            "monitors": 0.5,
            "other": 0.1,
        }
    )
    assert cpu_per_frame({}, after, 1000) == {} and cpu_per_frame(before, after, 0) == {}


def test_the_sampler_measures_the_steady_window_and_not_a_burst_shorter_than_two_readings():
    class Worker:  # seconds of event-loop CPU grow by 1 ms for every ms of wall time
        def thread_cpu(self) -> dict[str, float]:
            return {EVENT_LOOP: time.time()}

    sampler = CpuSampler(Worker(), every_s=0.05).start()
    time.sleep(0.6)
    sampler.stop()
    start, end = sampler.samples[0][0], sampler.samples[-1][0]
    steady = [start + (end - start) * k / 100 for k in range(101)]  # 101 outcomes, ms
    per_frame = sampler.per_frame(steady)
    # The 10th-90th percentile window holds about 80 % of the frames and of the time.
    assert per_frame["event loop"] == pytest.approx((end - start) / 101, rel=0.25)
    burst = [start + k / 100 for k in range(101)]  # all within 1 ms
    assert sampler.per_frame(burst) == {}
