"""The interface every pedestrian detector implements.

A detector takes a batch of decoded BGR images and returns, per image, an
``(N, 5)`` float32 array of ``x1, y1, x2, y2, score`` in the image's own pixel
coordinates.  Batches let GPU models amortise their launch cost; a CPU model
may simply loop.  Detectors are synchronous and never touch Kafka: agents run
them in an executor so the event loop never blocks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Detector", "empty_detections", "warm_up"]


@runtime_checkable
class Detector(Protocol):
    """A pedestrian detector with a stable name and version."""

    name: str
    version: str

    def detect_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Detections for each image, as ``(N, 5)`` float32 arrays."""
        ...


def empty_detections() -> np.ndarray:
    """An image with no pedestrians."""
    return np.zeros((0, 5), dtype=np.float32)


def warm_up(detector: Detector) -> float:
    """Let ``detector`` prepare for every batch shape it will see, if it can; seconds spent.

    On CUDA, SSDLite compiles each padded batch size here (:mod:`detectors.models.buckets`)
    rather than on a frame's time; detectors without a ``warm_up`` method cost nothing.
    """
    warm = getattr(detector, "warm_up", None)
    return float(warm()) if callable(warm) else 0.0
