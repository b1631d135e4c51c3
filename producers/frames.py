"""Build frame events from images, and send them to ``pds.frames``: signed, claim-checked, acked.

The send path, in order: move an image too large for a Kafka message to a
Redis claim-check, sign the frame with its camera's key, encode (which
validates against the schema), and hand it to an idempotent, acks=all
producer.  Delivery failures are collected from the producer's callbacks
(no per-frame future is kept, so replays of any length run in constant
memory) and reported by :meth:`FrameSender.flush`.
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType

import msgspec
import numpy as np

from detectors.imaging import encode_image
from streams import claimcheck
from streams.clients import producer, redis_client
from streams.events import MAX_IMAGE_BYTES, Frame, Truth, encode, new_id
from streams.settings import Settings
from streams.signing import Keyring
from streams.topics import TOPICS

__all__ = ["DeliveryError", "FrameSender", "build_frame", "encoded_frame"]


class DeliveryError(RuntimeError):
    """Some records were not acknowledged by the broker."""


def build_frame(
    camera_id: str,
    seq: int,
    image: np.ndarray,
    *,
    capture_ts_ns: int | None = None,
    encoding: str = "jpeg",
    quality: int = 90,
) -> Frame:
    """An unsigned frame event for a BGR image, with a fresh globally unique id."""
    height, width = image.shape[:2]
    data = encode_image(image, encoding, quality)
    return encoded_frame(
        camera_id,
        seq,
        data,
        width=width,
        height=height,
        encoding=encoding,
        capture_ts_ns=capture_ts_ns,
    )


def encoded_frame(
    camera_id: str,
    seq: int,
    data: bytes,
    *,
    width: int,
    height: int,
    encoding: str = "jpeg",
    capture_ts_ns: int | None = None,
) -> Frame:
    """An unsigned frame event for an image encoded already (captured now, by default):
    for senders that must not spend their time encoding, such as the benchmarks."""
    return Frame(
        frame_id=new_id(),
        camera_id=camera_id,
        seq=seq,
        capture_ts_ns=time.time_ns() if capture_ts_ns is None else capture_ts_ns,
        width=width,
        height=height,
        encoding=encoding,  # type: ignore[arg-type]
        image=data,
    )


class FrameSender:
    """Sends frames (signed when given a keyring) and truth records; use as a context manager."""

    def __init__(
        self, settings: Settings, keyring: Keyring | None = None, **overrides: object
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        options = {"client_id": "secmlops-frames", **overrides}
        self._producer = producer(settings, **options)
        self._redis = None
        self.failures: list[str] = []
        self.sent: Counter[str] = Counter()  # records queued, per topic
        self.bytes = 0
        self.by_reference = 0

    def prepare(self, frame: Frame) -> Frame:
        """Claim-check an oversized image, then sign: the frame exactly as it will travel."""
        if len(frame.image) > MAX_IMAGE_BYTES:
            if self._redis is None:
                self._redis = redis_client(self.settings)
            ref, digest = claimcheck.store(
                self._redis, frame.image, self.settings.claim_check_ttl_s
            )
            frame = msgspec.structs.replace(frame, image=b"", image_ref=ref, image_sha256=digest)
            self.by_reference += 1
        return self.keyring.sign(frame) if self.keyring else frame

    def send(self, frame: Frame) -> Frame:
        """Prepare and queue one frame; returns the frame as sent."""
        frame = self.prepare(frame)
        self.send_raw(frame.camera_id.encode(), encode(frame))
        return frame

    def send_raw(self, key: bytes, value: bytes, topic: str = TOPICS.frames.name) -> None:
        """Queue raw bytes, for red-team drills and tests of malformed input."""
        try:
            future = self._producer.send(topic, key=key, value=value)
        except Exception as exc:  # e.g. buffer full or metadata timeout
            self.failures.append(f"{topic}: {type(exc).__name__}: {exc}")
            return
        future.add_errback(lambda exc: self.failures.append(f"{topic}: {exc}"))
        self.sent[topic] += 1
        self.bytes += len(value)

    def send_truth(self, truth: Truth) -> None:
        """Queue a ground-truth record on ``pds.truth``."""
        self.send_raw(truth.camera_id.encode(), encode(truth), TOPICS.truth.name)

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait until every queued record is acknowledged; returns the frames sent so far.

        Raises
        ------
        DeliveryError
            When any record was not delivered, with the first reasons.
        """
        self._producer.flush(timeout=timeout_s)
        if self.failures:
            first = "; ".join(self.failures[:3])
            raise DeliveryError(f"{len(self.failures)} records not delivered: {first}")
        return self.sent[TOPICS.frames.name]

    def close(self) -> None:
        self._producer.close(timeout=10)
        if self._redis is not None:
            self._redis.close()

    def __enter__(self) -> FrameSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()
