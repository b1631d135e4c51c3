"""Monitors' online state per camera in Redis, so that a restart does not wipe their memory.

Why: a monitor's verdict depends on what it has seen on its camera: the
frame ids it would call a replay, the last sequence number, the drift
baseline's recent blocks, the tracks pedestrians should not vanish from, the
model version on trial.  Kept only in the worker's memory, all of that was
lost at every restart, a rolling deploy included: a frame replayed just
after it was not caught, and a degraded model promoted just before it was
never judged.  So each monitor agent saves the online state
(:meth:`~detectors.monitors.base.Monitor.online_state`) of the cameras it
scored, every ``SECMLOPS_MONITOR_CHECKPOINT`` seconds, when its worker
drains, and when its partitions are taken away; and a monitor instance
created for a camera resumes from the saved state.

What a checkpoint cannot know is what happened after it: a worker that
dies resumes from a state up to one interval old, and the frames it reads
again (those after the last commit) may look replayed to a state that saw
them.  A drained stop saves last, so a planned restart resumes exactly.

One Redis hash per camera, ``secmlops:monitor-state:<camera>``, one field
per monitor (JSON); it expires after ``ttl_s`` without a save, so cameras
that are gone (and the worker's warm-up cameras) do not pile up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import redis

__all__ = ["MonitorCheckpoints", "forget_cameras"]

log = logging.getLogger(__name__)

PREFIX = "secmlops:monitor-state:"


def _key(camera_id: str) -> str:
    return PREFIX + camera_id


class MonitorCheckpoints:
    """Saves and loads one monitor's online state per camera."""

    def __init__(self, client: redis.Redis, monitor: str, *, ttl_s: float = 7 * 86400) -> None:
        self.client, self.monitor, self.ttl_s = client, monitor, ttl_s

    def load(self, camera_id: str) -> dict[str, Any] | None:
        """The camera's saved state, or None (none saved, unreadable, or Redis down)."""
        try:
            raw = self.client.hget(_key(camera_id), self.monitor)
        except redis.RedisError as exc:
            log.warning("%s: cannot read the saved state of %s (%s)", self.monitor, camera_id, exc)
            return None
        if raw is None:
            return None
        try:
            state = json.loads(raw)
        except ValueError:
            log.warning(
                "%s: the saved state of %s is not JSON; starting fresh", self.monitor, camera_id
            )
            return None
        return state if isinstance(state, dict) else None

    def save(self, states: Mapping[str, Mapping[str, Any]]) -> bool:
        """Save the cameras' states in one round trip; False (logged) if Redis refused."""
        if not states:
            return True
        try:
            pipe = self.client.pipeline(transaction=False)
            for camera_id, state in states.items():
                pipe.hset(_key(camera_id), self.monitor, json.dumps(state, separators=(",", ":")))
                pipe.expire(_key(camera_id), int(self.ttl_s))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning(
                "%s: could not save the state of %d cameras (%s)", self.monitor, len(states), exc
            )
            return False
        return True


def forget_cameras(client: redis.Redis, camera_ids: list[str]) -> int:
    """Delete every monitor's saved state of these cameras; how many cameras had some.

    For drills that replay a recorded drive again as the same camera (the
    demo, ``secmlops eval``, the benchmarks): resumed, the last run's state
    would call the new run's frames replayed and out of order.
    """
    return int(client.delete(*map(_key, camera_ids))) if camera_ids else 0
