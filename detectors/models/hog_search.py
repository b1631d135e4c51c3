"""The multi-scale window search shared by both HOG detectors (OpenCV's and the torch port).

One place for the parameters of ``cv2.HOGDescriptor.detectMultiScale`` that
both implementations must agree on, so that the torch port stays a faithful
reference for attacks on the OpenCV detector.
"""

from __future__ import annotations

__all__ = ["HogSearch"]


class HogSearch:
    """Parameters of the sliding-window search.

    Parameters
    ----------
    win_stride
        Step of the 64×128 detection window, in pixels.
    padding
        Border added around the image before scanning, in pixels.
    scale
        Ratio between pyramid levels.
    hit_threshold
        SVM margin a window must exceed to count as a pedestrian.
    """

    def __init__(
        self,
        *,
        win_stride: int = 8,
        padding: int = 8,
        scale: float = 1.05,
        hit_threshold: float = 0.0,
    ) -> None:
        if win_stride < 1 or padding < 0 or scale <= 1.0:
            raise ValueError("need win_stride >= 1, padding >= 0 and scale > 1")
        self.win_stride = win_stride
        self.padding = padding
        self.scale = scale
        self.hit_threshold = hit_threshold
