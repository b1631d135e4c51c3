"""Perturbation energy: the fine-grained noise an L∞ attack leaves in flat image regions.

Why this statistic: gradient-sign attacks (FGSM, PGD) move most pixels by a
grey level or two in a pattern with no spatial structure.  In textured
regions that is lost in the texture, but in flat regions (sky, road, walls)
a clean JPEG frame has almost no pixel-scale residual, so the attack lifts
the *floor* of the residual map.  The score is a low percentile of the
per-block mean absolute residual after a 3×3 median filter: on the sample
drive, clean frames stay below 0.08 grey levels at their 99th percentile,
while PGD at ε = 8/255 lifts every attacked frame above 0.09 (see
``docs/monitors.md``).  It costs about a millisecond per 640×360 frame.

An attacker who knows this check can smooth the perturbation (see the
adaptive-attack row in ``docs/benchmarks.md``); that is why it is paired
with feature squeezing and the temporal check.
"""

from __future__ import annotations

import cv2
import numpy as np

from detectors.monitors.base import Monitor, Observation, Score
from detectors.monitors.per_image import per_image

__all__ = ["PerturbationEnergy", "residual_blocks", "residual_floor"]


def residual_blocks(image: np.ndarray, block: int = 8) -> np.ndarray:
    """Mean |grey − median3×3(grey)| per ``block``×``block`` tile, as float32."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    residual = cv2.absdiff(grey, cv2.medianBlur(grey, 3))
    height, width = (grey.shape[0] // block) * block, (grey.shape[1] // block) * block
    tiles = residual[:height, :width].astype(np.float32)
    return cv2.resize(tiles, (width // block, height // block), interpolation=cv2.INTER_AREA)


def residual_floor(image: np.ndarray, percentile: float = 20.0, block: int = 8) -> float:
    """The flat regions' noise: the mean of the tiles of :func:`residual_blocks` ranked
    within 5 percentage points of ``percentile`` (from the smallest).

    Computed once per read-only frame however many monitors ask (this one,
    and feature squeezing's trigger): :mod:`detectors.monitors.per_image`.

    A trimmed mean rather than one order statistic: tile means are multiples
    of 1/64, so a single percentile takes few distinct values and a threshold
    cannot sit between a clean frame and an attacked one that land on the
    same step.
    """
    key = ("residual_floor", percentile, block)
    return per_image.get(image, key, lambda: _residual_floor(image, percentile, block))


def _residual_floor(image: np.ndarray, percentile: float, block: int) -> float:
    tiles = residual_blocks(image, block).ravel()
    lo = int(len(tiles) * max(0.0, percentile - 5.0) / 100)
    hi = max(lo + 1, int(len(tiles) * min(100.0, percentile + 5.0) / 100))
    hi = min(hi, len(tiles))
    band = np.partition(tiles, [lo, hi - 1])[lo:hi]
    return float(band.mean())


class PerturbationEnergy(Monitor):
    """Scores the residual floor of a frame: high when flat regions carry pixel-scale noise.

    Parameters
    ----------
    percentile
        Which low percentile of the tile residuals is the "floor" (20: the
        flattest fifth of the image).
    block
        Tile side in pixels.

    Examples
    --------
    A flat grey frame scores 0; the same frame with ±2 grey-level sign noise
    (what PGD leaves behind) does not:

    >>> rng = np.random.default_rng(0)
    >>> flat = np.full((90, 160, 3), 120, np.uint8)
    >>> noisy = (flat + rng.choice([-2, 2], flat.shape)).astype(np.uint8)
    >>> monitor = PerturbationEnergy(threshold=0.5)
    >>> monitor.update(Observation("cam", "0" * 32, 0, 0, image=flat)).alarm
    False
    >>> monitor.update(Observation("cam", "1" * 32, 1, 0, image=noisy)).alarm
    True
    """

    name = "adversarial.energy"
    kind = "adversarial"
    consumes = "frames"
    params = ("percentile", "block")

    def __init__(
        self, *, percentile: float = 20.0, block: int = 8, threshold: float = 0.09
    ) -> None:
        if not 0 < percentile < 100 or block < 2:
            raise ValueError("percentile must be in (0, 100) and block >= 2")
        self.percentile = percentile
        self.block = block
        super().__init__(threshold=threshold)

    def score(self, observation: Observation) -> Score:
        if observation.image is None:
            return Score(0.0, "no image")
        floor = residual_floor(observation.image, self.percentile, self.block)
        return Score(floor, f"residual floor {floor:.3f} grey levels")
