"""Model health: a new model version is judged against the previous version's predictions."""

from __future__ import annotations

import json
import random

import pytest

from detectors.monitors.base import Observation
from detectors.monitors.health import ModelHealth
from streams.events import Box, Prediction, Timing


class Camera:
    """A seeded street: the number of pedestrians changes every few seconds, as in real video.

    The model finds each pedestrian in nine frames out of ten.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.people = 2
        self.i = 0

    def frame(self, version: str, *, confidence: float = 1.0, keep: float = 1.0) -> Observation:
        """The next frame as model ``version`` sees it; a degraded model scales or drops boxes."""
        if self.rng.random() < 0.01:
            self.people = min(5, max(1, self.people + self.rng.choice([-1, 1])))
        boxes = [
            Box(60.0 * k, 100.0, 60.0 * k + 40, 200.0, confidence * self.rng.uniform(0.55, 0.95))
            for k in range(self.people)
            if self.rng.random() < 0.9 * keep
        ]
        i, self.i = self.i, self.i + 1
        p = Prediction(f"{i:032x}", "cam-1", i, i, "ssdlite", version, boxes, Timing(), i)
        return Observation.of_prediction(p)


def calibrated(seed: int = 1) -> tuple[ModelHealth, Camera]:
    camera = Camera(seed)
    monitor = ModelHealth()
    monitor.calibrate([camera.frame("1") for _ in range(1500)], target_fpr=0.01)
    for _ in range(600):  # version 1 in service: its baseline
        assert not monitor.update(camera.frame("1")).alarm
    return monitor, camera


@pytest.mark.parametrize(
    ("degradation", "what"),
    [({"confidence": 0.5}, "mean confidence"), ({"keep": 0.05}, "detections/frame")],
)
def test_a_degraded_version_alarms_as_soon_as_it_is_judged(degradation: dict, what: str) -> None:
    monitor, camera = calibrated()
    verdicts = [monitor.update(camera.frame("2", **degradation)) for _ in range(200)]
    first = next(k for k, v in enumerate(verdicts) if v.alarm)
    assert first == monitor.min_samples - 1  # the first frame it is judged on
    assert not any(v.alarm for v in verdicts[:first])
    assert verdicts[first].reason.startswith(f"after 2: {what} ")
    assert verdicts[first].reason.endswith(" under 1")


def test_an_identical_model_re_versioned_does_not_alarm_and_becomes_the_baseline() -> None:
    monitor, camera = calibrated()
    verdicts = [monitor.update(camera.frame("2")) for _ in range(1000)]
    assert not any(v.alarm for v in verdicts)
    assert max(v.score for v in verdicts) > 0.0  # it was judged, not skipped
    # version 2 is the baseline now: a degraded version 3 is compared with it
    bad = [monitor.update(camera.frame("3", confidence=0.5)) for _ in range(100)]
    assert any(v.alarm for v in bad)
    assert next(v for v in bad if v.alarm).reason.endswith(" under 2")


def test_predictions_shifting_under_one_version_are_not_its_business() -> None:
    monitor, camera = calibrated()
    verdicts = [monitor.update(camera.frame("1", confidence=0.3)) for _ in range(500)]
    assert not any(v.alarm for v in verdicts)


def test_a_saved_state_mid_trial_resumes_with_identical_scores() -> None:
    monitor, camera = calibrated()
    for _ in range(40):
        monitor.update(camera.frame("2", keep=0.2))
    saved = json.loads(json.dumps(monitor.state()))
    resumed = ModelHealth.from_state(saved)
    assert resumed.state() == saved
    rest = [camera.frame("2", keep=0.2) for _ in range(400)]
    ahead = [monitor.update(o) for o in rest]
    assert [resumed.update(o) for o in rest] == ahead
    assert any(v.alarm for v in ahead)


def test_reset_forgets_versions_but_keeps_the_threshold() -> None:
    monitor, camera = calibrated()
    threshold = monitor.threshold
    monitor.reset()
    assert monitor.threshold == threshold
    assert monitor.online_state() == ModelHealth().online_state()
    # nothing to compare with after a reset: the first version seen is accepted
    assert not any(monitor.update(camera.frame("2", confidence=0.5)).alarm for _ in range(200))


def test_calibration_needs_enough_footage_and_sets_a_floor() -> None:
    camera = Camera(4)
    monitor = ModelHealth()
    with pytest.raises(ValueError, match="too little clean footage"):
        monitor.calibrate([camera.frame("1") for _ in range(100)], target_fpr=0.01)
    assert monitor.calibrate([camera.frame("1") for _ in range(120)], 0.01) >= 2.0


def test_uncalibrated_it_uses_the_default_threshold() -> None:
    camera = Camera(5)
    monitor = ModelHealth()
    for _ in range(400):
        monitor.update(camera.frame("1"))
    verdicts = [monitor.update(camera.frame("2", keep=0.1)) for _ in range(60)]
    assert verdicts[-1].alarm
    assert verdicts[-1].threshold == monitor.default_threshold


@pytest.mark.parametrize("params", [{"window": 10, "min_samples": 20}, {"margin": 0.9}])
def test_bad_hyperparameters_are_refused(params: dict) -> None:
    with pytest.raises(ValueError, match=r"min_samples|margin"):
        ModelHealth(**params)
