"""Build frame events from images, and send them to ``pds.frames``."""

from __future__ import annotations

import time
from types import TracebackType

import numpy as np

from detectors.imaging import encode_jpeg
from streams.clients import producer
from streams.events import Frame, encode, new_id
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["FrameSender", "build_frame"]


def build_frame(
    camera_id: str,
    seq: int,
    image: np.ndarray,
    *,
    capture_ts_ns: int | None = None,
    quality: int = 90,
) -> Frame:
    """A JPEG-encoded frame event for a BGR image, with a fresh globally unique id."""
    height, width = image.shape[:2]
    return Frame(
        frame_id=new_id(),
        camera_id=camera_id,
        seq=seq,
        capture_ts_ns=time.time_ns() if capture_ts_ns is None else capture_ts_ns,
        width=width,
        height=height,
        encoding="jpeg",
        image=encode_jpeg(image, quality),
    )


class FrameSender:
    """An idempotent, acks=all producer for ``pds.frames``, keyed by camera id.

    Use as a context manager; leaving it flushes, so every frame sent is
    either acknowledged by the broker or reported as an exception.
    """

    def __init__(self, settings: Settings) -> None:
        self._producer = producer(settings, client_id="secmlops-frames")
        self._pending: list = []

    def send(self, frame: Frame) -> None:
        """Queue one frame (validated against its schema first)."""
        self.send_raw(frame.camera_id.encode(), encode(frame))

    def send_raw(self, key: bytes, value: bytes) -> None:
        """Queue raw bytes; for red-team drills and tests of malformed input."""
        self._pending.append(self._producer.send(TOPICS.frames.name, key=key, value=value))

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every queued frame; returns how many were delivered, raises on failure."""
        self._producer.flush(timeout=timeout_s)
        delivered = 0
        for future in self._pending:
            future.get(timeout=timeout_s)
            delivered += 1
        self._pending.clear()
        return delivered

    def close(self) -> None:
        self._producer.close(timeout=10)

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
