"""Stopping a busy worker (it drains and leaves its group) or losing one (killed): either
way its successor gives every frame an outcome."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.clients import tail
from streams.events import Prediction, Quarantine, decode
from streams.outcome_reader import OutcomeReader, Outcomes
from streams.topics import TOPICS
from streams.worker import WorkerProcess
from tests.integration.conftest import (
    gate_holding_env,
    send_until_decided,
    send_until_predicted,
)


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


def outcome_counts(outcomes, marker: str, timeout_s: float) -> Counter:
    """Outcome records per frame id read from ``outcomes`` (a tail of the terminal topics)
    until ``marker``'s came, and 3 s more."""
    counts: Counter = Counter()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for records in outcomes.poll(timeout_ms=200).values():
            for record in records:
                event = decode(record.value)
                if isinstance(event, Prediction | Quarantine):
                    counts[event.frame_id] += 1
        if counts[marker] and deadline - time.monotonic() > 3:
            deadline = time.monotonic() + 3
    return counts


def test_a_worker_killed_after_deciding_frames_gives_none_of_them_a_second_outcome(
    stack, env, settings, keyring, tmp_path
):
    cam = f"decided-{uuid.uuid4().hex[:8]}"
    frames = [build_frame(cam, s, pattern_frame(s, width=320, height=240)) for s in range(40)]
    ids = {f.frame_id for f in frames}
    marker = build_frame(cam, 40, pattern_frame(40, width=320, height=240))
    # Nothing is committed while the first worker runs, so its successor reads every record
    # again; the frames are decided as soon as integrity has scored them.
    quick_env = {
        **env,
        "SECMLOPS_MONITORS": "integrity",
        "SECMLOPS_GATE_REQUIRE": "integrity",
        "SECMLOPS_WORKER_COMMIT_INTERVAL": "3600",
        "SECMLOPS_WORKER_SESSION_TIMEOUT": "8",
    }
    first = WorkerProcess(tmp_path / "first.log", env=quick_env).start()
    try:
        first.wait_ready(settings)
        assert send_until_decided(settings, keyring, frames).count == len(ids)
        outcomes = tail(settings, TOPICS.trusted, TOPICS.quarantine, client_id="test-decided")
        try:
            time.sleep(1)  # the ledger is written once the broker has the outcomes
            first.proc.kill()  # no drain, no commit: every record will be read again
            first.proc.wait(timeout=30)

            second = WorkerProcess(tmp_path / "second.log", env=quick_env).start()
            try:
                second.wait_ready(settings)
                with FrameSender(settings, keyring) as sender:
                    sender.send(marker)  # after the others on their partition
                counts = outcome_counts(outcomes, marker.frame_id, timeout_s=240)
                log = second.log_path.read_text(errors="replace")
            finally:
                second.stop()
        finally:
            outcomes.close()
    finally:
        first.stop()
    assert counts[marker.frame_id] == 1, "the successor was reading the partition"
    again = {frame_id: n for frame_id, n in counts.items() if frame_id in ids}
    assert again == {}, f"{len(again)} of {len(ids)} frames got a second outcome\n{log[-3000:]}"
