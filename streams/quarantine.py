"""The quarantine: frames the gate held back, kept in Redis with their evidence for review.

Each held frame is one hash, ``secmlops:quarantine:item:<frame_id>``, holding
the ``quarantine/1`` record (reasons, scores, model version), the prediction
that was withheld and, when the gate still had it, the signed frame itself
(the evidence a reviewer looks at, and what a release sends through the
pipeline again).  A sorted set indexes the items by time; both expire after
the retention (``SECMLOPS_QUARANTINE_RETENTION``, 7 days by default), so a
forgotten quarantine cannot fill Redis.

A release marks the frame id as released for a day: when the re-sent frame
comes back to the gate, integrity's "replay" alarm on it is waived (see
:mod:`streams.gating`); every other monitor judges it afresh, with the model
that serves now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
import redis

from streams.events import Frame, InvalidEvent, Prediction, Quarantine, decode, encode

__all__ = ["QuarantineItem", "QuarantineStore", "frame_ref"]

PREFIX = "secmlops:quarantine:"
INDEX = PREFIX + "index"
RELEASED_TTL_S = 86_400


def _item_key(frame_id: str) -> str:
    return f"{PREFIX}item:{frame_id}"


def frame_ref(frame_id: str) -> str:
    """Where a held frame's image is kept: the ``thumbnail_ref`` of its quarantine record."""
    return f"redis:{_item_key(frame_id)}#frame"


@dataclass(frozen=True)
class QuarantineItem:
    """One held frame as a reviewer sees it."""

    record: Quarantine
    prediction: Prediction | None
    frame: bytes | None
    status: str
    times: int
    released_by: str = ""
    released_reason: str = ""

    @property
    def frame_id(self) -> str:
        return self.record.frame_id

    def as_dict(self) -> dict:
        """JSON-ready, without the image bytes."""
        record = msgspec.structs.asdict(self.record)
        doc = {k: v for k, v in record.items() if k != "thumbnail_ref"}
        doc.update(
            status=self.status,
            times=self.times,
            frame_kept=self.frame is not None,
            frame_ref=self.record.thumbnail_ref,
            boxes=len(self.prediction.boxes) if self.prediction else None,
        )
        if self.released_by:
            doc.update(released_by=self.released_by, released_reason=self.released_reason)
        return doc

    def decoded_frame(self) -> Frame | None:
        if self.frame is None:
            return None
        try:
            return decode(self.frame, Frame)
        except InvalidEvent:
            return None


class QuarantineStore:
    """Hold, list, show, release and purge quarantined frames."""

    def __init__(self, client: redis.Redis, retention_s: int = 7 * 86400) -> None:
        self.client = client
        self.retention_s = retention_s

    def hold(self, held: list[tuple[Quarantine, Prediction, bytes | None]]) -> None:
        """Store a batch of quarantined frames in one round trip."""
        if not held:
            return
        pipe = self.client.pipeline(transaction=False)
        for record, prediction, frame in held:
            key = _item_key(record.frame_id)
            fields = {"record": encode(record), "prediction": encode(prediction), "status": "held"}
            if frame is not None:
                fields["frame"] = frame
            pipe.hset(key, mapping=fields)
            pipe.hincrby(key, "times", 1)
            pipe.expire(key, self.retention_s)
            pipe.zadd(INDEX, {record.frame_id: record.ts_ns / 1e9})
        pipe.zremrangebyscore(INDEX, 0, time.time() - self.retention_s)
        pipe.execute()

    def get(self, frame_id: str) -> QuarantineItem | None:
        fields = self.client.hgetall(_item_key(frame_id))
        if not fields or b"record" not in fields:
            return None
        prediction = fields.get(b"prediction")
        return QuarantineItem(
            record=decode(fields[b"record"], Quarantine),
            prediction=decode(prediction, Prediction) if prediction else None,
            frame=fields.get(b"frame"),
            status=fields.get(b"status", b"held").decode(),
            times=int(fields.get(b"times", 1)),
            released_by=fields.get(b"released_by", b"").decode(),
            released_reason=fields.get(b"released_reason", b"").decode(),
        )

    def list(
        self,
        *,
        camera: str | None = None,
        since_s: float | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[QuarantineItem]:
        """Newest first, filtered; items past their retention are gone."""
        self.client.zremrangebyscore(INDEX, 0, time.time() - self.retention_s)
        low = since_s if since_s is not None else "-inf"
        out: list[QuarantineItem] = []
        start, page = 0, max(limit, 100)
        while len(out) < limit:
            ids = self.client.zrevrangebyscore(INDEX, "+inf", low, start=start, num=page)
            if not ids:
                break
            start += len(ids)
            for frame_id in ids:
                item = self.get(frame_id.decode())
                if item is None:
                    self.client.zrem(INDEX, frame_id)  # expired under us
                    continue
                if camera is not None and item.record.camera_id != camera:
                    continue
                if status is not None and item.status != status:
                    continue
                out.append(item)
                if len(out) == limit:
                    break
        return out

    def count(self) -> int:
        return int(self.client.zcard(INDEX))

    def mark_released(self, frame_id: str, *, actor: str, reason: str) -> QuarantineItem:
        """Record a reviewer's release; raises ``KeyError`` if the frame is not held."""
        item = self.get(frame_id)
        if item is None:
            raise KeyError(frame_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(
            _item_key(frame_id),
            mapping={"status": "released", "released_by": actor, "released_reason": reason},
        )
        pipe.set(f"{PREFIX}released:{frame_id}", actor, ex=RELEASED_TTL_S)
        pipe.execute()
        return self.get(frame_id)  # type: ignore[return-value]

    def is_released(self, frame_id: str) -> bool:
        return bool(self.client.exists(f"{PREFIX}released:{frame_id}"))

    def purge(
        self, frame_ids: list[str] | None = None, *, older_than_s: float | None = None
    ) -> list[str]:
        """Delete the given items, or those older than ``older_than_s``; returns what went."""
        if frame_ids is None:
            cutoff = time.time() - (older_than_s or 0.0)
            frame_ids = [f.decode() for f in self.client.zrangebyscore(INDEX, "-inf", cutoff)]
        gone = []
        for frame_id in frame_ids:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(_item_key(frame_id))
            pipe.zrem(INDEX, frame_id)
            deleted, _ = pipe.execute()
            if deleted:
                gone.append(frame_id)
        return gone
