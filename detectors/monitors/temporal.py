"""Temporal consistency: pedestrians should not vanish mid-frame between two video frames.

A vanishing attack (or a patch) removes detections abruptly, while a person
who really leaves the scene walks out through an edge or shrinks away.  A
small constant-velocity tracker follows each camera's detections; the score
is the number of confirmed tracks (seen in ``confirm`` consecutive-ish
frames) that are currently missing although their predicted box is well
inside the image.  It needs only the predictions, so it costs microseconds.

What it cannot see: an attack that is present from the first frame a person
appears (the track is never confirmed), and a long attack after the
``patience`` frames for which a lost track is remembered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.monitors.base import Monitor, Observation, Score, prediction_boxes

__all__ = ["TemporalConsistency", "iou_matrix"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4+)`` and ``(M, 4+)`` boxes as an ``(N, M)`` array."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class TemporalConsistency(Monitor):
    """Counts confirmed pedestrian tracks that vanished away from the image border.

    Parameters
    ----------
    iou
        Minimum IoU between a track's predicted box and a detection to match.
    confirm
        Matches before a track counts as a real pedestrian.
    patience
        Frames a lost track is remembered (and counted as vanished).
    border
        Margin, as a fraction of the image extent seen so far, inside which
        a lost track may simply have walked out.

    Examples
    --------
    >>> from streams.events import Box, Prediction, Timing
    >>> def frame(seq, boxes):
    ...     pred = Prediction(f"{seq:032x}", "cam", seq, seq, "m", "1",
    ...                       [Box(*b, 0.9) for b in boxes], Timing(), seq)
    ...     return Observation.of_prediction(pred)
    >>> monitor = TemporalConsistency(threshold=0.5)
    >>> corner = (0, 0, 640, 360)  # a box that shows the image's extent
    >>> person = (300, 100, 340, 200)
    >>> [monitor.update(frame(s, [corner, person])).alarm for s in range(5)]
    [False, False, False, False, False]
    >>> monitor.update(frame(5, [corner])).reason
    '1 pedestrian(s) vanished mid-image'
    """

    name = "adversarial.temporal"
    kind = "adversarial"
    consumes = "predictions"
    params = ("iou", "confirm", "patience", "border")
    #: Uncalibrated: alarm when three or more confirmed pedestrians vanish at once.  With
    #: HOG on a busy stretch of the sample drive (frames 1200-1439) one track or more is
    #: lost on 40 % of clean frames (detector flicker), three or more on 0.4 %.
    default_threshold = 2.5

    def __init__(
        self,
        *,
        iou: float = 0.3,
        confirm: int = 3,
        patience: int = 5,
        border: float = 0.05,
        threshold: float = math.inf,
    ) -> None:
        if not 0 < iou < 1 or confirm < 1 or patience < 1 or not 0 <= border < 0.5:
            raise ValueError("0 < iou < 1, confirm >= 1, patience >= 1, 0 <= border < 0.5")
        self.iou = iou
        self.confirm = confirm
        self.patience = patience
        self.border = border
        super().__init__(threshold=threshold)

    def reset(self) -> None:
        # per track: x1, y1, x2, y2, vx, vy, hits, misses
        self._tracks = np.zeros((0, 8), dtype=np.float64)
        self._extent = np.zeros(2, dtype=np.float64)

    def _inside(self, boxes: np.ndarray) -> np.ndarray:
        margin = self._extent * self.border
        return (
            (boxes[:, 0] > margin[0])
            & (boxes[:, 1] > margin[1])
            & (boxes[:, 2] < self._extent[0] - margin[0])
            & (boxes[:, 3] < self._extent[1] - margin[1])
        )

    def score(self, observation: Observation) -> Score:
        prediction = observation.prediction
        if prediction is None:
            return Score(0.0, "no prediction")
        boxes = prediction_boxes(prediction)[:, :4]
        if len(boxes):
            self._extent = np.maximum(self._extent, boxes[:, 2:4].max(axis=0))
        tracks = self._tracks
        predicted = tracks[:, :4] + np.repeat(tracks[:, 4:6], 2, axis=0).reshape(-1, 4)
        overlap = iou_matrix(predicted, boxes)
        matched_track = np.full(len(tracks), -1)
        taken = np.zeros(len(boxes), dtype=bool)
        for t, b in zip(
            *np.unravel_index(np.argsort(-overlap, axis=None), overlap.shape), strict=True
        ):
            if overlap[t, b] < self.iou:
                break
            if matched_track[t] < 0 and not taken[b]:
                matched_track[t], taken[b] = b, True
        kept = []
        for t, row in enumerate(tracks):
            if matched_track[t] >= 0:
                box = boxes[matched_track[t]]
                velocity = ((box[:2] + box[2:]) - (row[:2] + row[2:4])) / 2
                kept.append([*box, *velocity, row[6] + 1, 0])
            elif row[7] + 1 <= self.patience:
                kept.append([*predicted[t], *row[4:6], row[6], row[7] + 1])
        kept += [[*box, 0.0, 0.0, 1, 0] for box in boxes[~taken]]
        self._tracks = np.asarray(kept, dtype=np.float64).reshape(-1, 8)
        lost = self._tracks[(self._tracks[:, 7] > 0) & (self._tracks[:, 6] >= self.confirm)]
        vanished = int(self._inside(lost[:, :4]).sum()) if len(lost) else 0
        return Score(float(vanished), f"{vanished} pedestrian(s) vanished mid-image")

    def online_state(self) -> dict[str, Any]:
        return {"tracks": self._tracks.tolist(), "extent": self._extent.tolist()}

    def load_online_state(self, data: Mapping[str, Any]) -> None:
        self._tracks = np.asarray(data.get("tracks") or [], dtype=np.float64).reshape(-1, 8)
        self._extent = np.asarray(data.get("extent") or [0, 0], dtype=np.float64)
