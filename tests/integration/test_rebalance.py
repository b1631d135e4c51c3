"""A second worker joining while frames wait in the gate: partitions move, and each frame is
decided once, by whoever owns it after the move."""

from __future__ import annotations

import re
import time
import uuid

from producers.frames import build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader
from streams.worker import WorkerProcess, free_port
from tests.integration.conftest import gate_holding_env, send_until_predicted


def rebalanced(worker: WorkerProcess, timeout_s: float) -> bool:
    """Wait until ``worker`` has given up its partitions a second time (a member joined)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.log_path.read_text(errors="replace").count("Revoking previously") >= 2:
            return True
        time.sleep(0.5)
    return False


def test_frames_waiting_in_the_gate_when_partitions_move_are_decided_once(
    stack, env, settings, keyring, tmp_path
):
    run = uuid.uuid4().hex[:6]
    cameras = [f"rebal-{run}-{k}" for k in range(6)]  # spread over the 4 partitions
    frames = [
        build_frame(cam, s, pattern_frame(s, width=160, height=128))
        for s in range(10)
        for cam in cameras
    ]
    ids = {f.frame_id for f in frames}
    # Every prediction waits in the gate for the deadline, so the rebalance comes while the
    # first worker holds all of them.  Offsets are committed only when partitions move (no
    # periodic commit), so what the rebalance itself commits decides what is read again.
    held_env = {**gate_holding_env(env, deadline_s=20), "SECMLOPS_WORKER_COMMIT_INTERVAL": "3600"}
    first = WorkerProcess(tmp_path / "first.log", env=held_env).start()
    # Two workers on one host need two web ports.
    second_env = {**held_env, "SECMLOPS_WORKER_WEB_PORT": str(free_port())}
    second = WorkerProcess(tmp_path / "second.log", env=second_env)
    try:
        first.wait_ready(settings)
        with OutcomeReader(settings, terminal=True) as reader:
            send_until_predicted(settings, keyring, frames)
            with OutcomeReader(settings) as predictions:  # from here on
                second.start()  # joins the group: the partitions are shared out again
                assert rebalanced(first, timeout_s=60), "the second worker joined the group"
                outcomes = reader.wait(ids, timeout_s=180)
                late = reader.wait(ids, timeout_s=25)  # a second decision would come by now
                again = predictions.wait(ids, timeout_s=1)
    finally:
        second.stop()
        first.stop()
    log = first.log_path.read_text(errors="replace")
    forgotten = [int(n) for n in re.findall(r"rebalance: (\d+) held records", log)]
    assert forgotten and max(forgotten) > 0, "the rebalance came while the gate held frames"
    assert outcomes.count == len(ids), "every frame has an outcome"
    assert outcomes.duplicates == 0 and late.count == 0, "forgotten by the first, decided once"
    assert again.count == 0, "frames predicted before the rebalance are not predicted again"
    assert all(q.reasons == ["missing/drift.image"] for q in outcomes.quarantined.values())
