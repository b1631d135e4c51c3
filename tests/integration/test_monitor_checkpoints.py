"""Monitors' per-camera state outlives the worker: saved in Redis, resumed by the next one."""

from __future__ import annotations

import uuid

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.checkpoints import MonitorCheckpoints, forget_cameras
from streams.clients import redis_client
from streams.events import encode
from streams.outcome_reader import OutcomeReader
from streams.worker import WorkerProcess
from tests.integration.conftest import secmlops


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
    assert sent[5].frame_id in saved["ids"]

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
