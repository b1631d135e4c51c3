"""Natural distribution shifts: weather, optics and compression, each with a ramp.

Each function maps a BGR uint8 image to a new one; ``strength`` in [0, 1]
scales the effect, so a ramp is just a strength that grows frame by frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import cv2
import numpy as np

__all__ = ["NATURAL"]

Shift = Callable[[np.ndarray, float, Mapping[str, float], int], np.ndarray]


def _clip(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


def brightness(
    image: np.ndarray, strength: float, p: Mapping[str, float], frame: int
) -> np.ndarray:
    return _clip(image.astype(np.float32) + p["delta"] * strength)


def contrast(image: np.ndarray, strength: float, p: Mapping[str, float], frame: int) -> np.ndarray:
    pixels = image.astype(np.float32)
    gain = 1.0 + (p["factor"] - 1.0) * strength
    return _clip(pixels.mean() + (pixels - pixels.mean()) * gain)


def fog(image: np.ndarray, strength: float, p: Mapping[str, float], frame: int) -> np.ndarray:
    """A bright veil, thicker towards the horizon (the top of the frame)."""
    height = image.shape[0]
    depth = np.linspace(1.0, 0.55, height, dtype=np.float32)[:, None, None]
    alpha = p["density"] * strength * depth
    return _clip(image.astype(np.float32) * (1.0 - alpha) + 225.0 * alpha)


def blur(image: np.ndarray, strength: float, p: Mapping[str, float], frame: int) -> np.ndarray:
    sigma = p["sigma"] * strength
    return image if sigma < 0.3 else cv2.GaussianBlur(image, (0, 0), sigma)


def noise(image: np.ndarray, strength: float, p: Mapping[str, float], frame: int) -> np.ndarray:
    rng = np.random.default_rng(int(p.get("seed", 0)) * 1_000_003 + frame)
    return _clip(image + rng.normal(0.0, p["sigma"] * strength, image.shape))


def jpeg(image: np.ndarray, strength: float, p: Mapping[str, float], frame: int) -> np.ndarray:
    if strength <= 0:
        return image
    quality = round(100 - (100 - p["quality"]) * strength)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else image


NATURAL: dict[str, Shift] = {
    "brightness": brightness,
    "contrast": contrast,
    "fog": fog,
    "blur": blur,
    "noise": noise,
    "jpeg": jpeg,
}
