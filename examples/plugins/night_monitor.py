"""An example monitor plug-in: flags frames too dark for the detector to be trusted.

The whole plug-in is this file plus one entry point in the package that
ships it (see docs/monitors.md):

    [project.entry-points."secmlops.detectors"]
    "example.night" = "night_monitor:NightMonitor"

Then ``SECMLOPS_MONITORS=all`` (the default) runs it, ``secmlops calibrate``
sets its threshold per camera, and its signals appear on ``pds.signals``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2

from detectors.monitors.base import Monitor, Observation, Score


class NightMonitor(Monitor):
    """Alarms when a frame is darker than the camera's clean footage ever was.

    The score is how far the frame's mean grey level falls below the
    camera's running mean, in grey levels; calibration sets the threshold
    from clean footage.

    Examples
    --------
    >>> import numpy as np
    >>> monitor = NightMonitor(threshold=40)
    >>> day, night = np.full((8, 8, 3), 150, np.uint8), np.full((8, 8, 3), 20, np.uint8)
    >>> [monitor.update(Observation("cam", f"{i:032x}", i, 0, image=day)).alarm for i in range(3)]
    [False, False, False]
    >>> monitor.update(Observation("cam", "f" * 32, 3, 0, image=night)).reason
    '130 grey levels darker than usual'
    """

    name = "example.night"
    kind = "drift"
    consumes = "frames"
    params = ("smoothing",)

    def __init__(self, *, smoothing: float = 0.02, threshold: float = 60.0) -> None:
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")
        self.smoothing = smoothing
        super().__init__(threshold=threshold)

    def reset(self) -> None:
        self._mean: float | None = None

    def score(self, observation: Observation) -> Score:
        if observation.image is None:
            return Score(0.0, "no image")
        level = float(cv2.cvtColor(observation.image, cv2.COLOR_BGR2GRAY).mean())
        usual = level if self._mean is None else self._mean
        self._mean = usual + self.smoothing * (level - usual)
        darker = max(0.0, usual - level)
        return Score(darker, f"{darker:.0f} grey levels darker than usual")

    def online_state(self) -> dict[str, Any]:
        return {"mean": self._mean}

    def load_online_state(self, data: Mapping[str, Any]) -> None:
        self._mean = data.get("mean")
