"""Per-thread CPU: a busy named thread shows up under its name, the main thread as the loop."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from streams.threads import (
    EVENT_LOOP,
    UNNAMED,
    CpuSampler,
    cpu_per_frame,
    process_cpu_seconds,
    thread_cpu_seconds,
)

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


def test_the_sampler_reads_device_busy_time_per_lane_summed_over_devices():
    class Worker:  # per ms of wall time: 0.5 ms of detector batches and 0.25 ms of checks
        def thread_cpu(self) -> dict[str, float]:
            return {EVENT_LOOP: time.time()}

        def device_busy(self) -> dict[str, float]:
            now = time.time()
            return {
                "detector-cuda:0/batches": now * 0.25,
                "detector-cuda:1/batches": now * 0.25,
                "detector-cuda:0/checks": now * 0.25,
            }

    worker = Worker()
    sampler = CpuSampler(worker, every_s=0.05, extras={"device": worker.device_busy}).start()
    time.sleep(0.6)
    sampler.stop()
    start, end = sampler.samples[0][0], sampler.samples[-1][0]
    steady = [start + (end - start) * k / 100 for k in range(101)]
    busy = sampler.device_per_frame(steady)
    assert set(busy) == {"batches", "checks"}
    assert busy["batches"] == pytest.approx(2 * busy["checks"], rel=0.05)
    assert busy["checks"] == pytest.approx(0.25 * (end - start) / 101, rel=0.25)


def test_an_extra_that_fails_gives_no_figures_and_the_cpu_is_still_read():
    class Worker:
        def thread_cpu(self) -> dict[str, float]:
            return {EVENT_LOOP: time.time()}

    def page_down() -> dict[str, float]:
        raise OSError("connection refused")

    sampler = CpuSampler(Worker(), every_s=0.05, extras={"device": page_down}).start()
    time.sleep(0.3)
    sampler.stop()
    start, end = sampler.samples[0][0], sampler.samples[-1][0]
    steady = [start + (end - start) * k / 100 for k in range(101)]
    assert sampler.device_per_frame(steady) == {}
    assert sampler.per_frame(steady)["event loop"] > 0


def test_process_cpu_seconds_reads_whole_processes_and_leaves_out_those_gone():
    import os

    spent = process_cpu_seconds({"me": os.getpid(), "gone": 2**22 + 7, "none": None})
    assert set(spent) == {"me"}
    assert spent["me"] > 0


def test_the_sampler_reads_extras_over_the_same_window():
    class Worker:
        def thread_cpu(self) -> dict[str, float]:
            return {EVENT_LOOP: time.time()}

    def read_broker() -> dict[str, float]:  # 0.1 ms of broker CPU per ms of wall time
        return {"broker": time.time() * 0.1}

    sampler = CpuSampler(Worker(), every_s=0.05, extras={"stack": read_broker}).start()
    time.sleep(0.6)
    sampler.stop()
    start, end = sampler.samples[0][0], sampler.samples[-1][0]
    steady = [start + (end - start) * k / 100 for k in range(101)]
    per_frame = sampler.extra_per_frame("stack", steady)
    assert per_frame["broker"] == pytest.approx(0.1 * (end - start) / 101, rel=0.25)
    assert sampler.extra_per_frame("nothing", steady) == {}


class MonitorBurst:
    """A worker whose event loop uses a CPU second a second and whose monitor thread uses
    ``cpu_s`` of CPU in one go, from ``start_s`` after the worker started."""

    def __init__(self, start_s: float, cpu_s: float) -> None:
        self.t0, self.start_s, self.cpu_s = time.time(), start_s, cpu_s

    def thread_cpu(self) -> dict[str, float]:
        elapsed = time.time() - self.t0
        return {EVENT_LOOP: elapsed, "monitor-x": min(max(elapsed - self.start_s, 0.0), self.cpu_s)}


def test_a_window_from_the_first_frame_sent_holds_the_work_done_ahead_of_the_outcomes():
    # On a backlog, monitors run ahead of the detector and can finish before the steady
    # window of the outcomes begins: only a window from the first frame sent counts them.
    worker = MonitorBurst(start_s=0.1, cpu_s=0.2)
    sampler = CpuSampler(worker, every_s=0.05).start()
    time.sleep(0.8)
    sampler.stop()
    sent, end = worker.t0 * 1000, sampler.samples[-1][0]
    outcomes = [sent + 400 + (end - sent - 400) * k / 100 for k in range(101)]
    assert sampler.per_frame(outcomes).get("monitors", 0.0) == 0.0
    assert sampler.per_frame(outcomes, since_ms=sent)["monitors"] == pytest.approx(200 / 101)


def test_a_window_can_run_past_the_last_outcome_to_count_work_that_ends_later():
    # With monitors, a frame is done at its last signal, which can follow its prediction.
    worker = MonitorBurst(start_s=0.5, cpu_s=0.2)
    sampler = CpuSampler(worker, every_s=0.05).start()
    time.sleep(0.9)
    sampler.stop()
    start = worker.t0 * 1000
    outcomes = [start + 100 + 3 * k for k in range(101)]  # predictions done by 0.4 s
    assert sampler.per_frame(outcomes, since_ms=start).get("monitors", 0.0) == 0.0
    late = sampler.per_frame(outcomes, since_ms=start, until_ms=start + 750)
    assert late["monitors"] == pytest.approx(200 / 101)
