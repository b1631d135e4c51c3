"""A synthetic test-pattern camera, for smoke tests and demos without recorded footage.

The pattern moves from frame to frame (so drift and frozen-camera checks see
motion) and is deterministic for a given seed, so tests can reproduce it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pattern_frame"]


def pattern_frame(seq: int, *, width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A BGR uint8 frame: a drifting colour gradient with a bright moving bar and noise.

    Examples
    --------
    >>> pattern_frame(0, width=64, height=48).shape
    (48, 64, 3)
    >>> bool((pattern_frame(3) == pattern_frame(3)).all())
    True
    """
    if width < 8 or height < 8:
        raise ValueError("the pattern needs at least 8x8 pixels")
    rng = np.random.default_rng(seed * 1_000_003 + seq)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    phase = (seq % 300) / 300.0
    image = np.empty((height, width, 3), dtype=np.float32)
    image[..., 0] = 255 * ((x + phase) % 1.0)
    image[..., 1] = 255 * y
    image[..., 2] = 255 * (1.0 - (x + y) / 2)
    bar = int((seq * 7) % width)
    image[:, bar : bar + max(2, width // 40), :] = 250.0
    image += rng.normal(0.0, 6.0, image.shape).astype(np.float32)
    return image.clip(0, 255).astype(np.uint8)
