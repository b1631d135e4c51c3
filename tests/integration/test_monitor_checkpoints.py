"""Monitors' per-camera state outlives the worker: saved in Redis, resumed by the next one."""

from __future__ import annotations

import time
import uuid

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.checkpoints import MonitorCheckpoints, forget_cameras
from streams.clients import redis_client
from streams.events import encode
from streams.outcome_reader import OutcomeReader
from streams.topics import TOPICS
from streams.worker import WorkerProcess
from tests.integration.conftest import secmlops, send_until_decided


def test_states_round_trip_through_redis_and_garbage_reads_as_none(stack, settings):
    client = redis_client(settings)
    cam, other = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("cam", "other"))
    store = MonitorCheckpoints(client, "test.monitor")
    assert store.load(cam) is None
    assert store.save({cam: {"last_seq": 9, "ids": ["a", "b"]}, other: {}})
    assert store.load(cam) == {"last_seq": 9, "ids": ["a", "b"]}
    assert MonitorCheckpoints(client, "another.monitor").load(cam) is None
    assert 0 < client.ttl(f"secmlops:monitor-state:{cam}") <= store.ttl_s
    client.hset(f"secmlops:monitor-state:{cam}", "test.monitor", b"{not json")
    assert store.load(cam) is None
    assert forget_cameras(client, [cam, other, "never-seen"]) == 2
    assert store.load(other) is None


def test_a_restarted_worker_still_knows_the_cameras_frames(stack, env, settings, keyring, tmp_path):
    cam = f"ckpt-{uuid.uuid4().hex[:8]}"
    run_env = {**env, "SECMLOPS_MONITORS": "integrity", "SECMLOPS_MONITOR_CHECKPOINT": "1"}
    frames = [build_frame(cam, s, pattern_frame(s, width=160, height=128)) for s in range(10)]

    first = WorkerProcess(tmp_path / "first.log", env=run_env).start()
    try:
        first.wait_ready(settings)
        with OutcomeReader(settings, terminal=True) as reader:
            with FrameSender(settings, keyring) as sender:
                sent = [sender.send(frame) for frame in frames]
            assert reader.wait({f.frame_id for f in sent}, timeout_s=120).count == len(sent)
    finally:
        first.stop()  # drains, and saves the monitors' state last
    saved = MonitorCheckpoints(redis_client(settings), "integrity").load(cam)
    assert saved is not None and saved["last_seq"] == 9
    known = {entry[0]: entry[1] for entry in saved["ids"]}  # frame id -> partition:offset
    assert known.get(sent[5].frame_id), "frame 5 is known, with the record it came in"

    second = WorkerProcess(tmp_path / "second.log", env=run_env).start()
    try:
        second.wait_ready(settings)
        with OutcomeReader(settings, terminal=True) as reader:
            with FrameSender(settings, keyring) as sender:
                sender.send_raw(cam.encode(), encode(sent[5]))  # a replay, after the restart
                fresh = sender.send(build_frame(cam, 10, pattern_frame(10, width=160, height=128)))
            outcomes = reader.wait({sent[5].frame_id, fresh.frame_id}, timeout_s=120)
    finally:
        second.stop()
    assert sent[5].frame_id in outcomes.quarantined, "the replay is caught across the restart"
    assert fresh.frame_id in outcomes.predictions, "frame 10 follows 9: no gap, trusted"

    done = secmlops(env, "monitors", "--forget", cam)
    assert f"deleted the saved monitor state of 1 of 1 cameras ({cam})" in done.stdout
    assert MonitorCheckpoints(redis_client(settings), "integrity").load(cam) is None


def test_frames_read_again_after_a_crash_keep_the_verdicts_they_had(
    stack, env, settings, keyring, tmp_path, tail
):
    """A worker killed before it committed: its successor reads the frames again, and resumes
    integrity from a state saved after them.  They are the same records, not replays: no
    new alarm.  (Outcomes would not show one: the gate decided these records before the
    crash, and its ledger keeps it from deciding them again.)"""
    cam = f"crash-{uuid.uuid4().hex[:8]}"
    run_env = {
        **env,
        "SECMLOPS_MONITORS": "integrity",
        "SECMLOPS_MONITOR_CHECKPOINT": "0.5",
        "SECMLOPS_WORKER_COMMIT_INTERVAL": "3600",  # nothing committed before the kill
        "SECMLOPS_WORKER_SESSION_TIMEOUT": "8",  # the dead worker's partitions move soon
    }
    frames = [build_frame(cam, s, pattern_frame(s, width=160, height=128)) for s in range(10)]
    ids = {f.frame_id for f in frames}
    first = WorkerProcess(tmp_path / "first.log", env=run_env).start()
    try:
        first.wait_ready(settings)
        assert send_until_decided(settings, keyring, frames).predictions.keys() == ids, "trusted"
        deadline = time.monotonic() + 10
        store = MonitorCheckpoints(redis_client(settings), "integrity")
        while (store.load(cam) or {}).get("last_seq") != 9 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (store.load(cam) or {}).get("last_seq") == 9, "saved on the timer, no frame since"
        first.proc.kill()  # no drain, no commit
        first.proc.wait(timeout=30)
    finally:
        first.stop()

    signals = tail(TOPICS.signals.name)
    second = WorkerProcess(tmp_path / "second.log", env=run_env).start()
    try:
        with OutcomeReader(settings, terminal=True) as reader:
            second.wait_ready(settings, timeout_s=120)
            again = signals.collect(lambda e: getattr(e, "frame_id", None) in ids, len(ids))
            outcomes = reader.wait(ids, timeout_s=3)
    finally:
        second.stop()
    assert len(again) == len(ids), "the successor scored every frame again"
    assert outcomes.count == 0, "decided before the crash, so not again (streams.decided)"
    assert [s.reason for s in again if s.alarm] == [], "and called none of them replayed"
