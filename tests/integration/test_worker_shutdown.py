"""Stopping a busy worker (it drains and leaves its group) or losing one (killed): either
way its successor gives every frame an outcome."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader, Outcomes
from streams.worker import WorkerProcess
from tests.integration.conftest import gate_holding_env, send_until_predicted


def finish_with_a_second_worker(
    reader: OutcomeReader, ids: set[str], env: dict[str, str], tmp_path: Path, timeout_s: float
) -> Outcomes:
    """Start a second worker and collect, through ``reader``, every frame's outcome."""
    second = WorkerProcess(tmp_path / "second.log", env=env).start()
    try:
        return reader.wait(ids, timeout_s=timeout_s)
    finally:
        second.stop()


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

            outcomes = finish_with_a_second_worker(reader, ids, busy_env, tmp_path, 180)
    finally:
        first.stop()
    assert outcomes.count == len(ids), "what the first left undone, the second did"


def test_a_worker_killed_with_frames_in_the_gate_loses_none_of_them(
    stack, env, settings, keyring, tmp_path
):
    cam = f"kill-{uuid.uuid4().hex[:8]}"
    frames = [build_frame(cam, s, pattern_frame(s, width=320, height=240)) for s in range(60)]
    ids = {f.frame_id for f in frames}
    # Every prediction waits in the gate for the deadline; a short session timeout, so that
    # the dead worker's partitions move on in seconds, not a minute.
    held_env = {**gate_holding_env(env, deadline_s=15), "SECMLOPS_WORKER_SESSION_TIMEOUT": "8"}
    first = WorkerProcess(tmp_path / "first.log", env=held_env).start()
    try:
        first.wait_ready(settings)
        with OutcomeReader(settings, terminal=True) as reader:
            send_until_predicted(settings, keyring, frames)
            time.sleep(4)  # past faust's commit interval (2.8 s): what it acknowledged is gone
            first.proc.kill()  # no drain, no goodbye: SIGKILL with every frame in the gate
            first.proc.wait(timeout=30)
            assert reader.wait(ids, timeout_s=1).count == 0, "all were still in the gate"

            outcomes = finish_with_a_second_worker(reader, ids, held_env, tmp_path, 240)
    finally:
        first.stop()
    assert outcomes.count == len(ids), "the second read them again and decided every one"
    assert all(q.reasons == ["missing/drift.image"] for q in outcomes.quarantined.values())
