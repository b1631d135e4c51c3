"""Drift monitors: block-averaged features against a clean baseline, confirmed by river."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from detectors.monitors.base import Observation
from detectors.monitors.drift import DetectionDrift, ImageDrift, detection_features, image_features
from producers.injection.natural import NATURAL
from streams.events import Box, Prediction, Timing

FEATURES = ImageDrift.features


def ar1_stream(n: int, *, seed: int, phi: float = 0.95, shift_at: int | None = None) -> list:
    """Per-frame features as video gives them: strongly correlated frame to frame.

    From ``shift_at`` on, brightness rises by 40 grey levels (about 6 sd of block means).
    """
    rng = np.random.default_rng(seed)
    state = np.zeros(len(FEATURES))
    scale = np.array([5.0, 2.0, 0.1, 1.5])
    level = np.array([120.0, 70.0, 7.0, 40.0])
    rows = []
    for t in range(n):
        state = phi * state + math.sqrt(1 - phi**2) * rng.normal(size=len(FEATURES))
        values = level + scale * state
        if shift_at is not None and t >= shift_at:
            values[0] += 40.0
        rows.append(dict(zip(FEATURES, values.tolist(), strict=True)))
    return rows


def first_alarm(monitor: ImageDrift, rows: list, offset: int = 0) -> int | None:
    for t, row in enumerate(rows):
        if monitor.update_features(row).alarm:
            return offset + t
    return None


def test_a_two_regime_stream_alarms_at_its_golden_index() -> None:
    rows = ar1_stream(4000, seed=12345, shift_at=3000)
    monitor = ImageDrift()
    monitor.calibrate_features(rows[:2000], target_fpr=0.01)
    t = first_alarm(monitor, rows[2000:], offset=2000)
    assert t == 3004  # golden: the end of the first five-frame block after the shift
    assert 3000 <= t < 3000 + 30


def test_a_stationary_correlated_stream_does_not_alarm() -> None:
    rows = ar1_stream(30_000, seed=7, phi=0.98)
    monitor = ImageDrift()
    threshold = monitor.calibrate_features(rows[:3000], target_fpr=0.01)
    scores = [monitor.update_features(row) for row in rows[3000:]]
    assert not any(s.alarm for s in scores)
    assert max(s.value for s in scores) < threshold


def test_one_lasting_shift_is_one_alarm_episode_with_a_reason() -> None:
    rows = ar1_stream(5000, seed=3, shift_at=3000)
    monitor = ImageDrift()
    monitor.calibrate_features(rows[:2000], target_fpr=0.01)
    alarms = [monitor.update_features(row) for row in rows[2000:]]
    flags = [s.alarm for s in alarms]
    rising = sum(1 for a, b in zip([False, *flags], flags, strict=False) if b and not a)
    assert rising == 1
    assert all(flags[1100:])  # alarming for as long as the shift lasts
    assert alarms[-1].reason.startswith("brightness up ")


def episodes(flags: list[bool]) -> int:
    return sum(1 for a, b in zip([False, *flags], flags, strict=False) if b and not a)


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ((1, -12.0), 2),  # contrast falls: another change, an episode of its own
        ((0, -40.0), 2),  # brightness falls: the same feature, the other way
        ((0, +40.0), 1),  # brightness rises again: the first shift's refractory holds it
    ],
)
def test_a_different_shift_soon_after_the_first_is_an_episode_of_its_own(
    second: tuple[int, float], expected: int
) -> None:
    rows = ar1_stream(4000, seed=3)
    feature, delta = second
    for t in range(3000, 3100):  # brightness +40 (about 6 sd), then 50 clean frames
        rows[t][FEATURES[0]] += 40.0
    for t in range(3150, 3250):  # inside the first episode's refractory (30 blocks, 150 frames)
        rows[t][FEATURES[feature]] += delta
    monitor = ImageDrift()
    monitor.calibrate_features(rows[:2000], target_fpr=0.01)
    flags = [monitor.update_features(row).alarm for row in rows[2000:]]
    assert episodes(flags) == expected


def test_uncalibrated_it_bootstraps_a_baseline_and_uses_the_default_threshold() -> None:
    rows = ar1_stream(2500, seed=11, shift_at=2000)
    monitor = ImageDrift()
    assert math.isinf(monitor.threshold)
    t = first_alarm(monitor, rows)
    assert t is not None
    assert 2000 <= t < 2030
    verdict = monitor.update(Observation("cam", "0" * 32, 0, 0))  # no pixels: no update
    assert verdict.alarm
    assert verdict.threshold == monitor.default_threshold


def test_a_saved_state_resumes_with_identical_scores() -> None:
    rows = ar1_stream(6000, seed=5, shift_at=3500)
    monitor = ImageDrift(memory=40)  # small memory: the detectors are rebuilt several times
    monitor.calibrate_features(rows[:1000], target_fpr=0.01)
    for row in rows[1000:2503]:  # stop mid-block
        monitor.update_features(row)
    saved = json.loads(json.dumps(monitor.state()))  # plain JSON, no pickles
    resumed = ImageDrift.from_state(saved)
    assert resumed.state() == saved
    ahead = [monitor.update_features(row) for row in rows[2503:]]
    again = [resumed.update_features(row) for row in rows[2503:]]
    assert ahead == again
    assert any(s.alarm for s in ahead)


def test_a_calibration_of_older_features_is_not_applied(caplog) -> None:
    # drift.image's features changed (version 2): a baseline fitted to the old values,
    # saved in Redis before an upgrade, would be compared with new ones.
    monitor = ImageDrift()
    monitor.calibrate_features(ar1_stream(1000, seed=3), target_fpr=0.01)
    old = json.loads(json.dumps(monitor.state()))
    old["calibration"].pop("feature_version")  # as saved before versions were recorded
    with caplog.at_level("WARNING"):
        stale = ImageDrift.from_state(old)
    assert stale.calibration()["baseline"] == {}
    assert stale.threshold == math.inf  # runs on its default, learning a baseline
    assert "secmlops calibrate" in caplog.text
    current = ImageDrift.from_state(monitor.state())
    assert current.calibration() == monitor.calibration()
    assert current.threshold == monitor.threshold


def test_a_saved_state_of_older_features_is_refused() -> None:
    monitor = ImageDrift()
    for row in ar1_stream(50, seed=4):
        monitor.update_features(row)
    saved = monitor.online_state() | {"feature_version": 1}
    with pytest.raises(ValueError, match="version 1 of its features"):
        ImageDrift().load_online_state(saved)


def test_reset_keeps_the_calibration_and_clears_the_rest() -> None:
    rows = ar1_stream(3000, seed=9, shift_at=2200)
    monitor = ImageDrift()
    threshold = monitor.calibrate_features(rows[:2000], target_fpr=0.01)
    calibration = monitor.calibration()
    fresh = monitor.online_state()
    for row in rows[2000:]:
        monitor.update_features(row)
    assert monitor.online_state() != fresh
    monitor.reset()
    assert monitor.threshold == threshold
    assert monitor.calibration() == calibration
    assert monitor.online_state() == fresh


@pytest.mark.parametrize("params", [{"block": 0}, {"margin": 0.5}, {"release": 0.0}, {"memory": 5}])
def test_bad_hyperparameters_are_refused(params: dict) -> None:
    with pytest.raises(ValueError, match=">="):
        ImageDrift(**params)


def test_image_features_see_blur_and_fog() -> None:
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (640, 360))
    sharp = image_features(image)
    blurred = image_features(NATURAL["blur"](image, 1.0, {"sigma": 2.0}, 0))
    foggy = image_features(NATURAL["fog"](image, 1.0, {"density": 0.7}, 0))
    assert blurred["sharpness"] < sharp["sharpness"] - 0.5
    assert foggy["contrast"] < sharp["contrast"] * 0.6
    assert foggy["brightness"] > sharp["brightness"]


def _prediction(i: int, boxes: list[Box]) -> Observation:
    p = Prediction(f"{i:032x}", "cam-1", i, i, "ssdlite", "1", boxes, Timing(), i)
    return Observation.of_prediction(p)


def test_detection_features_skip_what_an_empty_frame_lacks() -> None:
    empty = detection_features([])
    assert empty["count"] == 0.0
    assert all(math.isnan(v) for k, v in empty.items() if k != "count")
    two = detection_features([Box(0, 0, 10, 20, 0.9), Box(10, 10, 30, 30, 0.5)])
    assert two == {
        "count": 2.0,
        "confidence": pytest.approx(0.7),
        "height": 20.0,
        "aspect": 1.5,
        "centre_x": 12.5,
        "centre_y": 15.0,
    }


def test_detection_drift_sees_confidence_fall_but_not_sparse_frames() -> None:
    rng = np.random.default_rng(1)

    def frame(i: int, conf: float) -> Observation:
        n = int(rng.integers(0, 3))  # empty frames are common
        ys = rng.uniform(100, 150, n)
        boxes = [Box(50.0, y, 90.0, y + 100, conf + rng.normal(0, 0.05)) for y in ys]
        return _prediction(i, boxes)

    monitor = DetectionDrift()
    monitor.calibrate([frame(i, 0.7) for i in range(1500)], target_fpr=0.01)
    clean = [monitor.update(frame(i, 0.7)) for i in range(1500, 3000)]
    assert not any(v.alarm for v in clean)
    t = next(i for i in range(3000, 4000) if monitor.update(frame(i, 0.35)).alarm)
    assert t < 3000 + 60
    assert "confidence down" in monitor.update(frame(t + 1, 0.35)).reason


# --- the real drive ------------------------------------------------------------


def _replayed(image: np.ndarray) -> np.ndarray:
    """As a monitor sees a replayed frame: JPEG at quality 90 and back."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def test_real_drive_fog_ramp_is_detected_within_60_frames_and_clean_is_quiet(
    sample_drive,
) -> None:
    capture = cv2.VideoCapture(str(sample_drive))
    frames = []
    while len(frames) < 1020:
        ok, image = capture.read()
        assert ok, "the sample drive is shorter than expected"
        frames.append(image)
    capture.release()

    def observation(i: int, image: np.ndarray) -> Observation:
        return Observation("dashcam", f"{i:032x}", i, i, image=_replayed(image))

    monitor = ImageDrift()
    monitor.calibrate([observation(i, frames[i]) for i in range(600)], target_fpr=0.01)
    clean = [monitor.update(observation(i, frames[i])) for i in range(600, 900)]
    assert not any(v.alarm for v in clean)

    onset, detected = 900, None
    for i in range(onset, len(frames)):
        strength = min(1.0, (i - onset + 1) / 60)
        foggy = NATURAL["fog"](frames[i], strength, {"density": 0.7}, i)
        verdict = monitor.update(observation(i, foggy))
        if verdict.alarm:
            detected = i - onset + 1
            break
    assert detected is not None
    assert detected <= 60
    assert "contrast down" in verdict.reason
