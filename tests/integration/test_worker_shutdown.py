"""Stopping a busy worker: it drains, leaves its group, and its successor loses nothing."""

from __future__ import annotations

import signal
import uuid

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader
from streams.worker import WorkerProcess


def test_a_worker_stopped_mid_stream_exits_by_itself_and_a_new_one_finishes_the_work(
    stack, env, settings, keyring, tmp_path
):
    cam = f"stop-{uuid.uuid4().hex[:8]}"
    frames = [build_frame(cam, s, pattern_frame(s, width=320, height=240)) for s in range(60)]
    ids = {f.frame_id for f in frames}
    # Every monitor on: they run behind the detector, so work is in flight at the stop.
    busy_env = {**env, "SECMLOPS_MONITORS": "all"}
    first = WorkerProcess(tmp_path / "first.log", env=busy_env).start()
    try:
        first.wait_ready(settings)
        with OutcomeReader(settings) as reader, OutcomeReader(settings) as probe:
            with FrameSender(settings, keyring) as sender:
                for frame in frames:
                    sender.send(frame)
            assert probe.wait({frames[0].frame_id}, timeout_s=120).count == 1
            code = first.stop()  # frames still in flight: it drains, then stops
            log = first.log_path.read_text(errors="replace")
            assert code not in (-signal.SIGKILL, None), "exited by itself, not killed"
            assert "drained in" in log, "took no new frames and let those in flight finish"
            assert "LeaveGroup request succeeded" in log, "left its group: no rebalance wait"

            second = WorkerProcess(tmp_path / "second.log", env=busy_env).start()
            try:
                outcomes = reader.wait(ids, timeout_s=180)
            finally:
                second.stop()
    finally:
        first.stop()
    assert outcomes.count == len(ids), "what the first left undone, the second did"
