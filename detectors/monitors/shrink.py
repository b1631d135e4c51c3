"""Small copies of a frame for monitors' features, made on OpenCV's fast path.

Why: ``cv2.resize`` with ``INTER_AREA`` averages whole pixel blocks, with
SIMD, only when both scale factors are integers; at any other ratio it
weighs fractional pixel overlaps, about ten times slower.  At 424×240 (the
demo's size) an exact 320-pixel-wide copy took 0.89 ms, and a 64×36
thumbnail 0.29 ms, against 0.08 ms for 640→320: most of the image monitors'
work, on every frame (docs/benchmark-log.md, "Gate cost").  So the monitors
shrink by an integer factor, dropping the last few rows and columns, and
resample exactly only what is left, a copy a few times the target's size.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["factor_for", "shrink", "shrink_to"]


def factor_for(length: int, target: int) -> int:
    """The largest integer factor that keeps ``length`` at least ``target`` (1 if it is less)."""
    return max(1, length // max(1, target))


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """The means of ``factor``×``factor`` pixel blocks; the rows and columns that do not
    fill a block (fewer than ``factor``) are dropped, half from each edge, so that the
    copy stays centred on the frame.  ``factor`` 1 returns ``image``.

    >>> shrink(np.arange(25, dtype=np.uint8).reshape(5, 5), 3)  # the centre 3x3 block
    array([[12]], dtype=uint8)
    """
    if factor < 1:
        raise ValueError(f"shrink factor must be at least 1, got {factor}")
    factor = min(factor, image.shape[0], image.shape[1])
    if factor == 1:
        return image
    height, width = image.shape[0] // factor, image.shape[1] // factor
    top, left = (image.shape[0] % factor) // 2, (image.shape[1] % factor) // 2
    block = image[top : top + height * factor, left : left + width * factor]
    return cv2.resize(block, (width, height), interpolation=cv2.INTER_AREA)


def shrink_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Exactly ``size`` (width, height): :func:`shrink` by the largest factor that stays at
    or above it, then area resampling of that copy (close to resampling the whole frame).

    >>> shrink_to(np.zeros((240, 424), np.uint8), (64, 36)).shape
    (36, 64)
    """
    width, height = size
    factor = min(factor_for(image.shape[1], width), factor_for(image.shape[0], height))
    small = shrink(image, factor)
    if small.shape[:2] == (height, width):
        return small
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_AREA)
