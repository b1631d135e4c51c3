"""Dalal–Triggs HOG + linear SVM, as shipped in OpenCV (``HOGDescriptor_getDefaultPeopleDetector``).

The classic pretrained pedestrian detector, and the reference that the
differentiable torch port is checked against.  It runs on the CPU only.
"""

from __future__ import annotations

import cv2
import numpy as np

from detectors.models.base import empty_detections
from detectors.models.hog_search import HogSearch

__all__ = ["OpenCVHog"]


class OpenCVHog(HogSearch):
    """OpenCV's people detector with explicit, documented search parameters.

    Takes the keyword arguments of :class:`~detectors.models.hog_search.HogSearch`.

    Examples
    --------
    >>> import numpy as np
    >>> hog = OpenCVHog()
    >>> [d.shape for d in hog.detect_batch([np.zeros((128, 64, 3), np.uint8)])]
    [(0, 5)]
    """

    name = "hog-opencv"

    def __init__(self, **search: float) -> None:
        super().__init__(**search)  # type: ignore[arg-type]
        self.version = f"cv{cv2.__version__}"
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [self._detect(image) for image in images]

    def _detect(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if height < 128 or width < 64:  # smaller than one detection window
            return empty_detections()
        rects, weights = self._hog.detectMultiScale(
            image,
            hitThreshold=self.hit_threshold,
            winStride=(self.win_stride, self.win_stride),
            padding=(self.padding, self.padding),
            scale=self.scale,
        )
        if len(rects) == 0:
            return empty_detections()
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
        x1, y1 = rects[:, :1], rects[:, 1:2]
        boxes = np.hstack([x1, y1, x1 + rects[:, 2:3], y1 + rects[:, 3:4], scores])
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return boxes
