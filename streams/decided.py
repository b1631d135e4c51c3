"""Which frame records already have their outcome published: a ledger in Redis, for the gate.

Why: the gate acknowledges a frame's input records once its outcome is sent,
but faust commits offsets only every ``SECMLOPS_WORKER_COMMIT_INTERVAL``
(2.8 s).  A worker killed in between (SIGKILL, out of memory) leaves those
records uncommitted, and its successor reads them again and published every
one of those outcomes a second time.  With this ledger the gate records each
decided frame record once its outcome is on the broker, and a successor
that reads the record again drops its prediction instead of deciding it
twice.  What is left is a window of milliseconds: outcomes on the broker
whose record had not yet reached Redis when the worker died.

One sorted set per partition of ``pds.frames`` and consumer group
(``secmlops:gate-decided:<app id>:<partition>``); each member is
``<offset>/<frame id>``, scored by the offset.  The frame id is part of the
member, so a topic deleted and created again (offsets from 0) cannot make a
new frame look decided.  Each set keeps the newest :data:`KEEP` offsets and
expires a week after its last write.

Every failure of Redis here is the caller's to survive: the gate then
decides as if nothing were recorded, at least once, never losing a frame.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import redis

from streams.early_signals import record_of

__all__ = ["KEEP", "DecidedLedger"]

PREFIX = "secmlops:gate-decided:"
KEEP = 200_000  # offsets kept per partition: far more than a gate leaves uncommitted
TTL_S = 7 * 86_400


class DecidedLedger:
    """Frame records (``Prediction.delivery``, ``partition:offset``) whose outcome is sent."""

    def __init__(self, client: redis.Redis, app_id: str, *, keep: int = KEEP) -> None:
        self.client = client
        self.app_id = app_id
        self.keep = keep

    def record(self, decided: Iterable[tuple[str, str]]) -> int:
        """Record ``(delivery, frame_id)`` pairs as decided; returns how many were given.

        Call it only once their outcome records are acknowledged by the broker: a
        frame recorded here is never decided again by this consumer group.
        """
        by_partition: dict[str, list[tuple[int, str]]] = defaultdict(list)
        count = 0
        for delivery, frame_id in decided:
            partition, offset = _split(delivery)
            by_partition[partition].append((offset, frame_id))
            count += 1
        if not count:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for partition, items in by_partition.items():
            key = self._key(partition)
            pipe.zadd(key, {f"{offset}/{frame_id}": offset for offset, frame_id in items})
            pipe.zremrangebyrank(key, 0, -(self.keep + 1))
            pipe.expire(key, TTL_S)
        pipe.execute()
        return count

    def decided(self, items: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``(delivery, frame_id)`` recorded as decided (one round trip)."""
        wanted = [(d, f) for d, f in items if d]
        if not wanted:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for delivery, frame_id in wanted:
            partition, offset = _split(delivery)
            pipe.zscore(self._key(partition), f"{offset}/{frame_id}")
        scores = pipe.execute()
        return {item for item, score in zip(wanted, scores, strict=True) if score is not None}

    def _key(self, partition: str) -> str:
        return f"{PREFIX}{self.app_id}:{partition}"


def _split(delivery: str) -> tuple[str, int]:
    record = record_of(delivery)
    if record is None:
        raise ValueError(f"not a frame record's delivery (partition:offset): {delivery!r}")
    return str(record[0]), record[1]
