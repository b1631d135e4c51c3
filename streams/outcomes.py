"""What happens to one input event: a result, or a rejection that becomes a dead letter.

Every frame ends in exactly one recorded outcome.  Code that cannot process an
event returns a :class:`Rejected` instead of raising, and the agent turns it
into a :class:`~streams.events.DeadLetter` with :func:`dead_letter`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from streams.events import DeadLetter

__all__ = ["Rejected", "dead_letter"]


@dataclass(frozen=True)
class Rejected:
    """An event that cannot be processed; ``reason`` is a short stable code."""

    reason: str
    detail: str
    frame_id: str | None = None


def dead_letter(
    rejected: Rejected,
    *,
    payload: bytes,
    source_topic: str,
    partition: int = -1,
    offset: int = -1,
    key: bytes | None = None,
) -> DeadLetter:
    """The dead-letter record for a rejected input, with enough to find and replay it."""
    return DeadLetter(
        ts_ns=time.time_ns(),
        source_topic=source_topic[:256],
        partition=partition,
        offset=offset,
        reason=rejected.reason,
        detail=rejected.detail[:2000],
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_head=bytes(payload[:256]),
        key=bytes(key[:256]) if key is not None else None,
        frame_id=rejected.frame_id,
    )
