"""Monitors scoring in the device thread (SECMLOPS_WORKER_MONITOR_THREAD=device), on the
real stack: every monitor still signals every frame, in time for the gate."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from detectors.monitors.registry import available
from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.events import Prediction, Quarantine, Signal
from streams.topics import TOPICS
from streams.worker import WorkerProcess
from tests.integration.conftest import collect_from


@pytest.fixture(scope="module")
def worker(stack, env, tmp_path_factory):
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = WorkerProcess(
        log,
        env={
            **env,
            "SECMLOPS_WORKER_BATCH_WAIT": "0.02",
            "SECMLOPS_WORKER_MONITOR_THREAD": "device",
        },
    ).start()
    try:
        process.wait_ready(stack.settings)
        yield process
    finally:
        process.stop()


def test_monitors_in_the_device_thread_signal_every_frame_before_the_gates_deadline(
    worker, settings, keyring, tail
):
    cam = f"place-{uuid.uuid4().hex[:8]}"
    signals = tail(TOPICS.signals.name)
    outcomes = [tail(TOPICS.trusted.name), tail(TOPICS.quarantine.name)]
    with FrameSender(settings, keyring) as sender:
        for seq in range(20):
            sender.send(build_frame(cam, seq, pattern_frame(seq, width=160, height=128)))
    found = signals.collect(
        lambda e: isinstance(e, Signal) and e.camera_id == cam, 20 * len(available()), 180
    )
    assert Counter(s.monitor for s in found) == dict.fromkeys(available(), 20)
    decided = collect_from(
        outcomes, lambda e: isinstance(e, Prediction | Quarantine) and e.camera_id == cam, 20
    )
    assert sorted(e.seq for e in decided) == list(range(20)), "one outcome per frame"
    late = [e.reasons for e in decided if isinstance(e, Quarantine)]
    assert not any(r.startswith("missing/") for reasons in late for r in reasons), late
    busy = worker.device_busy()
    (thread,) = {key.partition("/")[0] for key in busy}
    assert busy[f"{thread}/monitors"] > 0, "the monitors' batches ran in the device thread"
