"""Drift monitors: has the camera's footage, or what the model finds in it, changed?

Each monitor reduces a frame to a few named features (:func:`image_features`,
:func:`detection_features`); the shared engine
(:class:`~detectors.monitors.block_drift.BlockDrift`) averages them over
blocks of frames, standardises them against a clean baseline and runs
river's PageHinkley, ADWIN and KSWIN on them, with hysteresis, so that one
shift is one alarm episode and correlated video raises no alarm storm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import cv2
import numpy as np

from detectors.monitors.base import Observation
from detectors.monitors.block_drift import BlockDrift
from detectors.monitors.shrink import factor_for, shrink
from streams.events import Box

__all__ = ["DetectionDrift", "ImageDrift", "detection_features", "image_features"]

_DETECTION_FEATURES = ("count", "confidence", "height", "aspect", "centre_x", "centre_y")


def image_features(image: np.ndarray) -> dict[str, float]:
    """Brightness, contrast, sharpness and colour of a BGR uint8 frame.

    Sharpness is the log variance of the Laplacian of a copy 320 to 639
    pixels wide, the frame shrunk by an integer factor (blur of sigma 2 on
    a 640-pixel frame still shows there); the rest come from grey and HSV
    copies of it, the HSV one shrunk by 2 again.  Integer factors keep
    OpenCV on its fast path (:mod:`detectors.monitors.shrink`): 0.4-0.5 ms
    for a 640x360 or a 424x240 frame on the 2-core development machine,
    where an exact 320-pixel copy of the 424x240 one took 2.2 ms.  A frame
    narrower than 320 pixels is used as it is.

    >>> image = np.full((360, 640, 3), 100, np.uint8)
    >>> image_features(image)["brightness"]
    100.0
    """
    small = shrink(image, factor_for(image.shape[1], 320))
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(grey)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    hsv = cv2.cvtColor(shrink(small, 2), cv2.COLOR_BGR2HSV)
    return {
        "brightness": float(mean[0, 0]),
        "contrast": float(std[0, 0]),
        "sharpness": math.log(float(laplacian.var()) + 1.0),
        "saturation": float(hsv[..., 1].mean()),
    }


def detection_features(boxes: Sequence[Box]) -> dict[str, float]:
    """Count, mean confidence, height, shape (height/width) and centre of a frame's boxes.

    Positions stay in pixels: the frame size is not in a prediction, and a
    monitor instance watches one camera, so its baseline is in the same
    pixels.  Features of the boxes are NaN (skipped) for a frame without any.

    >>> detection_features([Box(0.0, 0.0, 10.0, 30.0, 0.5)])["aspect"]
    3.0
    """
    if not boxes:
        return dict.fromkeys(_DETECTION_FEATURES, math.nan) | {"count": 0.0}
    b = np.asarray([(x.x1, x.y1, x.x2, x.y2, x.score) for x in boxes], dtype=np.float64)
    width, height = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return {
        "count": float(len(boxes)),
        "confidence": float(b[:, 4].mean()),
        "height": float(height.mean()),
        "aspect": float((height / np.maximum(width, 1.0)).mean()),
        "centre_x": float((b[:, 0] + b[:, 2]).mean() / 2),
        "centre_y": float((b[:, 1] + b[:, 3]).mean() / 2),
    }


class ImageDrift(BlockDrift):
    """Drift of the footage itself: brightness, contrast, sharpness and colour.

    Features come from :func:`image_features`; the engine is described in
    :mod:`detectors.monitors.block_drift`.  Uncalibrated (``threshold`` infinite) it learns its
    baseline from the first ``warmup`` blocks it sees and alarms at
    ``default_threshold`` sd: fine for a quick look, but calibrate on clean
    footage (:meth:`calibrate`) for a known false-alarm rate.

    Parameters
    ----------
    block
        Frames per block, averaged before any test (default 5).
    recent
        Blocks averaged into the deviation compared with the threshold (2).
    warmup
        Blocks that bootstrap the baseline when uncalibrated (120).
    margin, release, cooldown
        Calibration's factor on the clean quantile (``default_margin``); the fraction of
        the threshold that ends an episode (0.5); blocks after an episode in which
        its features, each in the direction it moved, start no new one (30).
    memory
        Most block values kept per feature to rebuild the detectors (200).
    default_threshold, threshold
        The threshold in baseline sd while uncalibrated (5.0); the calibrated one.
    seed
        Seed of KSWIN's sampling.

    Examples
    --------
    A seeded grey scene that brightens from frame 400:

    >>> rng = np.random.default_rng(12345)
    >>> texture = rng.integers(0, 60, (36, 64, 3))
    >>> def frame(i, level):
    ...     image = np.clip(texture + level + rng.normal(0, 2), 0, 255).astype(np.uint8)
    ...     return Observation("cam-1", f"{i:032x}", i, i, image=image)
    >>> monitor = ImageDrift()
    >>> monitor.calibrate([frame(i, 100) for i in range(300)], target_fpr=0.01) >= 3.0
    True
    >>> for i in range(300, 600):
    ...     verdict = monitor.update(frame(i, 100 if i < 400 else 130))
    ...     if verdict.alarm:
    ...         print(i, verdict.reason.split(",")[0])
    ...         break
    404 brightness up 15.0 sd
    """

    name = "drift.image"
    consumes = "frames"
    features = ("brightness", "contrast", "sharpness", "saturation")
    # 2: from a copy shrunk by an integer factor (detectors.monitors.shrink); 1 resampled
    # the frame to exactly 320 pixels wide, which at 424x240 moved sharpness by 3 sd.
    feature_version = 2
    # 1.25, not 1.5: with 1.5 a +70 grey-level ramp over 60 frames was caught after 64
    # frames (target 60); with 1.25 after 59, still without a false alarm in the hour of
    # clean replay (docs/benchmarks.md, "Drift").
    default_margin = 1.25
    floors: ClassVar[dict[str, float]] = dict(
        brightness=1.0, contrast=0.5, sharpness=0.02, saturation=0.5
    )

    def features_of(self, observation: Observation) -> dict[str, float]:
        """:func:`image_features` of the frame; none (no update) without pixels."""
        if observation.image is None:
            return {}
        return image_features(observation.image)


class DetectionDrift(BlockDrift):
    """Drift of what the model finds: how many people, how sure, how big, where.

    Features come from :func:`detection_features` (count, mean confidence,
    mean box height, mean height/width and mean centre, positions in
    pixels); frames without boxes add only their count.  Same engine and
    parameters as :class:`ImageDrift`.

    Examples
    --------
    A model that finds three people a frame, then mostly none from frame 500:

    >>> import random
    >>> from streams.events import Prediction, Timing
    >>> rng = random.Random(12345)
    >>> def observation(i, people):
    ...     boxes = []
    ...     for _ in range(people):
    ...         x, y = rng.uniform(0, 500), rng.uniform(100, 200)
    ...         boxes.append(Box(x, y, x + 40, y + 100, rng.uniform(0.5, 0.9)))
    ...     p = Prediction(f"{i:032x}", "cam-1", i, i, "ssd", "1", boxes, Timing(), i)
    ...     return Observation.of_prediction(p)
    >>> monitor = DetectionDrift()
    >>> _ = monitor.calibrate([observation(i, rng.choice([2, 3, 4])) for i in range(400)], 0.01)
    >>> for i in range(400, 800):
    ...     verdict = monitor.update(observation(i, 3 if i < 500 else rng.choice([0, 0, 1])))
    ...     if verdict.alarm:
    ...         print(i, verdict.reason.split(",")[0])
    ...         break
    509 count down 7.5 sd
    """

    name = "drift.detections"
    consumes = "predictions"
    features = _DETECTION_FEATURES
    floors: ClassVar[dict[str, float]] = dict(
        count=0.2, confidence=0.01, height=2.0, aspect=0.05, centre_x=4.0, centre_y=4.0
    )

    def features_of(self, observation: Observation) -> dict[str, float]:
        """:func:`detection_features` of the prediction; none without one."""
        if observation.prediction is None:
            return {}
        return detection_features(observation.prediction.boxes)
