"""Model health: did the predictions change when the model version did?

A new model version that finds far fewer pedestrians, or finds them with
much less confidence, on the same camera is a regression even when no
frame looks wrong.  The monitor keeps the current version's recent
predictions; when ``model_version`` changes it freezes them as the previous
version's baseline and compares the new version's frames with it.

Why not a two-sample test: consecutive frames are strongly correlated, so a
test that counts frames as independent samples finds "significant"
differences between any two stretches of clean video.  The statistic
compares means and does not grow with the number of frames: the log ratio
of detections per frame (pedestrians come and go in proportion; a model
that misses most of them divides the count) and the difference of the
mean per-frame confidence, each divided by its calibrated scale (how far
it moves between consecutive clean stretches of one model, i.e. what
re-versioning an identical model shows), the larger of the two.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from detectors.monitors.base import DetectFn, Monitor, Observation, Score
from detectors.monitors.base import quantile_threshold as _quantile
from streams.events import Prediction

__all__ = ["LABELS", "ModelHealth", "Sample", "prediction_sample", "prediction_shift"]

#: Scales when uncalibrated: a count ratio of e^0.5 (about 1.6x), a confidence step of 0.05
_DEFAULT_SCALES = {"count": 0.5, "confidence": 0.05}
_SCALE_FLOORS = {"count": 0.05, "confidence": 0.005}  # the smallest calibrated scale
LABELS = {"count": "detections/frame", "confidence": "mean confidence"}
_MIN_THRESHOLD = 2.0  # a calibration never sets the threshold below twice the clean scale

Sample = tuple[float, float | None]  # detections in a frame, their mean confidence


def _means(base: Sequence[Sample], new: Sequence[Sample]) -> dict[str, tuple[float, float, float]]:
    """Per feature with values on both sides: the new mean, the base mean, their difference.

    The count's difference is a log ratio (pedestrians come and go in
    proportion; a model that misses most of them divides the count).
    """
    out = {}
    for k, name in enumerate(_DEFAULT_SCALES):
        b = [s[k] for s in base if s[k] is not None]
        x = [s[k] for s in new if s[k] is not None]
        if b and x:  # e.g. no confidence at all: the count speaks for it
            now, before = sum(x) / len(x), sum(b) / len(b)
            diff = math.log((now + 0.1) / (before + 0.1)) if k == 0 else now - before
            out[name] = (now, before, diff)
    return out


def prediction_sample(prediction: Prediction) -> Sample:
    """What health compares of one prediction: its detections and their mean confidence."""
    confidences = [b.score for b in prediction.boxes]
    mean = sum(confidences) / len(confidences) if confidences else None
    return float(len(prediction.boxes)), mean


def prediction_shift(
    base: Sequence[Sample], new: Sequence[Sample], scales: Mapping[str, float]
) -> tuple[float, str, float, float]:
    """The largest scaled difference, its feature, and the new and the base means."""
    best = (0.0, "count", 0.0, 0.0)
    for name, (now, before, diff) in _means(base, new).items():
        value = abs(diff) / scales.get(name, _DEFAULT_SCALES[name])
        if value > best[0]:
            best = (value, name, now, before)
    return best


class ModelHealth(Monitor):
    """Shift of one camera's predictions after a model version change.

    Until the first version change it only keeps the last ``window``
    frames.  After a change, from the new version's ``min_samples``-th frame
    on, the value is the scaled shift (see the module docstring) of its
    frames (the last ``window``) against the previous version's; it alarms
    above the threshold.  After ``window`` frames in a row without an alarm
    the new version becomes the baseline.  A version still on trial is
    compared with the last accepted one, even after a further change; a
    version that served fewer than ``min_samples`` frames is no baseline, so
    the version after it is accepted unjudged.

    Parameters
    ----------
    window
        Frames of a version kept as its baseline, and the trial length (default 300).
    min_samples
        Frames of a new version before it is judged (60).
    margin
        Calibration multiplies the clean quantile by it (1.5).
    default_threshold
        The threshold while uncalibrated (3.0), in default scales: a count
        ratio of e^0.5 (about 1.6x) or a confidence step of 0.05.
    threshold
        The calibrated threshold (infinite: uncalibrated).

    Examples
    --------
    Version 2 of the model is much less sure of the same pedestrians:

    >>> import random
    >>> from streams.events import Box, Prediction, Timing
    >>> rng = random.Random(12345)
    >>> def observation(i, version, scale=1.0):
    ...     boxes = [Box(10.0 * k, 0.0, 10.0 * k + 8, 20.0, scale * rng.uniform(0.6, 0.9))
    ...              for k in range(rng.choice([1, 2, 3]))]
    ...     p = Prediction(f"{i:032x}", "cam-1", i, i, "ssd", version, boxes, Timing(), i)
    ...     return Observation.of_prediction(p)
    >>> monitor = ModelHealth()
    >>> monitor.calibrate([observation(i, "1") for i in range(900)], 0.01) >= 2.0
    True
    >>> for i in range(900, 1400):
    ...     old = i < 1200
    ...     verdict = monitor.update(observation(i, "1" if old else "2", 1.0 if old else 0.5))
    ...     if verdict.alarm:
    ...         print(i, verdict.reason)
    ...         break
    1259 after 2: mean confidence 0.38 vs 0.75 under 1
    """

    name = "health"
    kind = "health"
    consumes = "predictions"
    params = ("window", "min_samples", "margin", "default_threshold")

    def __init__(
        self,
        *,
        window: int = 300,
        min_samples: int = 60,
        margin: float = 1.5,
        default_threshold: float = 3.0,
        threshold: float = math.inf,
    ) -> None:
        if not 2 <= min_samples <= window:
            raise ValueError(f"need 2 <= min_samples <= window, got {min_samples}, {window}")
        if margin < 1.0 or default_threshold <= 0.0:
            raise ValueError("margin must be >= 1 and default_threshold > 0")
        self.window, self.min_samples = window, min_samples
        self.margin, self.default_threshold = margin, default_threshold
        self._scales: dict[str, float] = {}
        super().__init__(threshold=threshold)

    def reset(self) -> None:
        """Forget the versions seen; keep the calibration."""
        self._version: str | None = None
        self._current: deque[Sample] = deque(maxlen=self.window)
        self._base: dict[str, Any] | None = None  # {"version", "samples"} of the accepted one
        self._calm = 0  # frames of the version on trial since it last alarmed

    def score(self, observation: Observation) -> Score:
        """Add one prediction; judge the version on trial, if any."""
        p = observation.prediction
        if p is None:
            return Score(0.0, "", False)
        if p.model_version != self._version:
            leaving_accepted = self._version is not None and self._base is None
            if leaving_accepted and len(self._current) >= self.min_samples:
                self._base = {"version": self._version, "samples": list(self._current)}
            self._version, self._calm = p.model_version, 0
            self._current.clear()
        self._current.append(prediction_sample(p))
        if self._base is None:
            return Score(0.0, "", False)
        self._calm += 1
        if len(self._current) < self.min_samples:
            return Score(0.0, "", False)
        value, feature, now, before = prediction_shift(
            self._base["samples"], self._current, self._scales
        )
        if value > self.limit:
            self._calm = 0
            base = self._base["version"]
            label = LABELS[feature]
            why = f"after {p.model_version}: {label} {now:.2f} vs {before:.2f} under {base}"
            return Score(value, why, True)
        if self._calm >= self.window:
            self._base = None  # the new version is healthy: it is the baseline now
        return Score(value, "", False)

    def calibration(self) -> dict[str, Any]:
        """Per feature, how far its mean moves between clean stretches of one version."""
        return {"scales": dict(self._scales)}

    def load_calibration(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`calibration` returned."""
        self._scales = {k: float(v) for k, v in (data.get("scales") or {}).items()}

    def online_state(self) -> dict[str, Any]:
        """The current version and its frames, the frozen baseline, the trial's calm run."""
        return {
            "version": self._version,
            "current": [list(s) for s in self._current],
            "base": None
            if self._base is None
            else {
                "version": self._base["version"],
                "samples": [list(s) for s in self._base["samples"]],
            },
            "calm": self._calm,
        }

    def load_online_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`online_state` returned."""
        if not data:
            return
        self._version = data["version"]
        self._current = deque((_sample(s) for s in data["current"]), maxlen=self.window)
        base = data["base"]
        self._base = (
            None
            if base is None
            else {"version": base["version"], "samples": [_sample(s) for s in base["samples"]]}
        )
        self._calm = int(data["calm"])

    def calibrate(
        self,
        clean: Iterable[Observation],
        target_fpr: float,
        detect: DetectFn | None = None,
        *,
        batch: int = 32,
    ) -> float:
        """Set the threshold from consecutive stretches of clean footage of one version.

        Each ``window`` frames (fewer on short footage) is a baseline; the
        frames after it play a re-versioned identical model, judged from its
        ``min_samples``-th frame to its ``window``-th, as :meth:`score` would.
        The threshold is ``margin`` times the ``target_fpr`` quantile of each
        such trial's largest value, and at least 2.
        """
        samples: list[Sample] = []
        for o in clean:
            if o.prediction is not None:
                scores = [b.score for b in o.prediction.boxes]
                samples.append((float(len(scores)), sum(scores) / len(scores) if scores else None))
        width = min(self.window, len(samples) - self.min_samples)
        if width < self.min_samples:
            raise ValueError(f"too little clean footage: {len(samples)} predictions")
        pairs = [
            (samples[start : start + width], samples[start + width : start + 2 * width])
            for start in range(0, len(samples) - width - self.min_samples + 1, max(1, width // 2))
        ]
        diffs: dict[str, list[float]] = {name: [] for name in _DEFAULT_SCALES}
        for b, t in pairs:
            for k in range(self.min_samples, len(t) + 1):
                for name, (_, _, diff) in _means(b, t[:k]).items():
                    diffs[name].append(diff**2)
        self._scales = {  # the RMS clean difference of each feature's means
            name: max(_SCALE_FLOORS[name], math.sqrt(sum(d) / len(d)) if d else 0.0)
            for name, d in diffs.items()
        }
        worst = [
            max(
                prediction_shift(b, t[:k], self._scales)[0]
                for k in range(self.min_samples, len(t) + 1)
            )
            for b, t in pairs
        ]
        self.threshold = max(_MIN_THRESHOLD, self.margin * _quantile(worst, target_fpr))
        self.reset()
        return self.threshold


def _sample(s: Sequence[Any]) -> Sample:
    return (float(s[0]), None if s[1] is None else float(s[1]))
