"""Canary comparison: the candidate version and the serving one, judged on the same frames.

While a canary runs (``secmlops models promote VERSION --canary SECONDS``),
the detector agent runs the candidate in shadow on every batch the serving
version sees.  Its predictions never leave the worker; instead, per camera,
this judge compares the two versions' last ``window`` predictions with the
model-health statistic (:func:`detectors.monitors.health.prediction_shift`:
the log ratio of detections per frame and the shift of mean confidence,
each over its scale) and emits one ``signal/1`` per frame under the monitor
name ``canary`` (a batch to a ``signals/1`` record).  Paired frames make this
far sharper than health's before/after comparison: the footage is identical,
only the model differs.

The policy agent (:mod:`streams.agents.policy`) aborts the canary when these
signals alarm too often, and promotes the candidate when the period ends
with enough frames compared and no alarm storm.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from detectors.monitors.health import LABELS, Sample, prediction_sample, prediction_shift
from streams.events import Prediction, Signal

__all__ = ["CANARY_MONITOR", "CanaryJudge"]

CANARY_MONITOR = "canary"
_SCALES = {"count": 0.5, "confidence": 0.05}  # model health's uncalibrated scales


@dataclass
class CanaryJudge:
    """Per camera: the serving and the candidate version's recent predictions, paired."""

    window: int = 60
    min_samples: int = 20
    threshold: float = 3.0
    _serving: dict[str, deque[Sample]] = field(default_factory=dict)
    _candidate: dict[str, deque[Sample]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.min_samples <= self.window or self.threshold <= 0:
            raise ValueError("need 1 <= min_samples <= window and threshold > 0")

    def compare(self, serving: Prediction, candidate: Prediction) -> Signal:
        """The signal for one frame both versions predicted."""
        camera = serving.camera_id
        base = self._serving.setdefault(camera, deque(maxlen=self.window))
        new = self._candidate.setdefault(camera, deque(maxlen=self.window))
        base.append(prediction_sample(serving))
        new.append(prediction_sample(candidate))
        value, reason = 0.0, ""
        if len(new) >= self.min_samples:
            value, feature, now, before = prediction_shift(base, new, _SCALES)
            if value > self.threshold:
                reason = (
                    f"canary {candidate.model_version}: {LABELS[feature]} {now:.2f} vs "
                    f"{before:.2f} under {serving.model_version} on the same frames"
                )
        return Signal(
            frame_id=serving.frame_id,
            camera_id=camera,
            seq=serving.seq,
            monitor=CANARY_MONITOR,
            score=min(value, 1e9),
            threshold=self.threshold,
            alarm=bool(reason),
            ts_ns=time.time_ns(),
            model_version=candidate.model_version,
            reason=reason,
        )

    def reset(self) -> None:
        """Forget everything (a new canary starts)."""
        self._serving.clear()
        self._candidate.clear()
