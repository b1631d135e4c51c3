"""Several worker processes in one consumer group share the cameras (``bench/gate.py
--workers``, and a GPU host running one process per partition)."""

from __future__ import annotations

import re

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader
from streams.topics import camera_per_partition
from streams.worker import WorkerGroup, group_members


def frame_partitions(log: str) -> set[int]:
    """The ``pds.frames`` partitions a worker was last given, from its log's table."""
    tables = re.findall(r"\| pds\.frames\s+\| \{([\d, -]+)\}", log)
    if not tables:
        return set()
    found: set[int] = set()
    for part in tables[-1].split(","):
        lo, _, hi = part.strip().partition("-")
        found |= set(range(int(lo), int(hi or lo) + 1))
    return found


def test_a_group_is_ready_when_every_worker_has_joined_and_every_partition_is_served(
    stack, env, settings, keyring, tmp_path
):
    cameras = camera_per_partition("group")
    frames = [
        build_frame(c, s, pattern_frame(s, width=160, height=128))
        for s in range(3)
        for c in cameras
    ]
    group = WorkerGroup(2, tmp_path, env={**env, "SECMLOPS_MONITORS": "none"})
    try:
        group.start().wait_ready(settings, timeout_s=120)
        assert group_members(settings) == 2
        with OutcomeReader(settings) as reader:
            with FrameSender(settings, keyring) as sender:
                for frame in frames:
                    sender.send(frame)
            outcomes = reader.wait({f.frame_id for f in frames}, timeout_s=60)
    finally:
        group.stop()
    assert outcomes.count == len(frames) and outcomes.duplicates == 0
    shares = [frame_partitions(w.log_path.read_text(errors="replace")) for w in group.workers]
    assert all(shares) and set.union(*shares) == {0, 1, 2, 3}, "each worker got partitions"
    assert not set.intersection(*shares), "and no partition went to both"
    assert group_members(settings) == 0, "both left the group when stopped"
