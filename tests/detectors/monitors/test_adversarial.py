"""Adversarial-input monitors on real footage: attacks leave evidence, clean frames do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.imaging import decode_image, encode_jpeg
from detectors.monitors.base import Observation
from detectors.monitors.energy import PerturbationEnergy
from detectors.monitors.patch import PatchEvidence
from detectors.monitors.squeeze import FeatureSqueezing, squeeze
from detectors.monitors.temporal import TemporalConsistency
from streams.events import Box, Prediction, Timing


def jpeg(image):
    return decode_image(encode_jpeg(image, 90), width=image.shape[1], height=image.shape[0])


@pytest.fixture(scope="module")
def drive(sample_drive):
    """Frames 0-299 of the real sample drive, as a replay delivers them (JPEG q90)."""
    capture, frames = cv2.VideoCapture(str(sample_drive)), []
    while len(frames) < 300:
        ok, image = capture.read()
        assert ok
        frames.append(image)
    return frames


@pytest.fixture(scope="module")
def hog():
    from detectors.models.hog_torch import TorchHog

    return TorchHog(device="cpu")


@pytest.fixture(scope="module")
def pgd_frames(drive, hog):
    """Two frames attacked with PGD at eps=8/255 (pedestrians vanish for the HOG model)."""
    from producers.injection.adversarial import Adversary
    from producers.injection.spec import parse_spec

    adversary = Adversary(device="cpu", detector=hog)
    spec = parse_spec("pgd:eps=8/255,steps=10")
    chosen = [148, 235]  # frames where the HOG model finds pedestrians
    return [(n, jpeg(adversary.attack(drive[n], spec)[0])) for n in chosen]


def observe(i, image, boxes=()):
    pred = Prediction(f"{i:032x}", "cam", i, i, "m", "1", [Box(*b) for b in boxes], Timing(), i)
    return Observation("cam", f"{i:032x}", i, i, i, image=image, prediction=pred)


def calibrated(cls, drive, **kwargs):
    monitor = cls(**kwargs)
    monitor.calibrate((observe(i, jpeg(f)) for i, f in enumerate(drive[:200])), 0.01)
    return monitor


def test_energy_flags_pgd_frames_and_not_the_clean_drive(drive, pgd_frames):
    monitor = calibrated(PerturbationEnergy, drive)
    clean = [monitor.update(observe(i, jpeg(drive[i]))).alarm for i in range(200, 300)]
    assert sum(clean) <= 2
    for n, attacked in pgd_frames:
        verdict = monitor.update(observe(n, attacked))
        assert verdict.alarm, f"frame {n}: {verdict}"
        assert verdict.score > monitor.update(observe(n, jpeg(drive[n]))).score


def test_squeezing_brings_back_a_pedestrian_pgd_removed(drive, pgd_frames, hog):
    monitor = FeatureSqueezing(threshold=0.5, sample_every=1)
    attacked = [observe(n, a) for n, a in pgd_frames]
    # Weak on its own (clean frames flicker by a pedestrian too): see docs/monitors.md.
    assert sum(s.value for s in monitor.score_batch(attacked, hog.detect_batch)) >= 1


def test_squeezing_checks_only_sampled_or_suspicious_frames(drive, pgd_frames, hog):
    calls = []

    def detect(images):
        calls.append(len(images))
        return hog.detect_batch(images)

    monitor = FeatureSqueezing(sample_every=10)
    clean = [observe(i, jpeg(drive[i]), ()) for i in range(20)]
    scores = monitor.score_batch(clean, detect)
    assert sum(calls) == 2
    assert sum(s.reason == "not checked" for s in scores) == 18
    calls.clear()
    monitor.score_batch([observe(n, a) for n, a in pgd_frames], detect)
    assert sum(calls) == len(pgd_frames), "a high perturbation energy always triggers a check"


def test_calibration_sets_the_squeezing_trigger_to_the_cameras_clean_floor(drive, pgd_frames):
    def none_found(images):
        return [np.zeros((0, 5), np.float32) for _ in images]

    monitor = FeatureSqueezing(sample_every=10**6, trigger=0.0)  # uncalibrated: checks all
    monitor.calibrate(
        (observe(i, jpeg(f), ()) for i, f in enumerate(drive[:200])), 0.01, none_found
    )
    assert monitor.trigger > 0.0
    clean = [observe(i, jpeg(drive[i]), ()) for i in range(200, 300)]
    checked = [s.reason != "not checked" for s in monitor.score_batch(clean, none_found)]
    assert sum(checked) <= 10, "about trigger_rate (3 %) of clean frames set it off"
    attacked = monitor.score_batch([observe(n, a) for n, a in pgd_frames], none_found)
    assert all(s.reason != "not checked" for s in attacked), "PGD frames still do"

    restored = FeatureSqueezing()
    restored.restore(monitor.state())
    assert restored.trigger == monitor.trigger
    restored.trigger = 1.0
    restored.load_calibration(monitor.calibration())
    assert restored.trigger == monitor.trigger, "a recalibration moves the trigger"


def test_squeeze_keeps_the_image_shape_and_drops_low_bits():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = squeeze(image, bits=4)
    assert out.shape == image.shape
    assert len(np.unique(out)) <= 16


def test_patch_evidence_flags_a_noise_patch_on_a_pedestrian_but_not_the_drive(drive, hog):
    monitor = calibrated(PatchEvidence, drive)
    clean = [monitor.update(observe(i, jpeg(drive[i]))).alarm for i in range(200, 300)]
    assert sum(clean) <= 2
    n = next(n for n in range(0, 300, 10) if len(hog.detect_batch([drive[n]])[0]))
    x1, y1, x2, y2, _ = hog.detect_batch([drive[n]])[0][0]
    side = int((y2 - y1) * 0.35)
    cx, cy = int((x1 + x2) / 2), int(y1 + (y2 - y1) * 0.4)
    patched = drive[n].copy()
    rng = np.random.default_rng(0)
    region = patched[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2]
    region[:] = rng.choice([0, 255], region.shape)
    assert monitor.update(observe(n, jpeg(patched))).alarm


def test_temporal_consistency_flags_pedestrians_vanishing_mid_image_not_walking_out():
    monitor = TemporalConsistency(threshold=0.5)
    frame = (0, 0, 640, 360, 0.5)  # shows the image's extent
    walking_out = [(600 + 8 * i, 100, 640 + 8 * i, 200, 0.9) for i in range(6)]
    verdicts = [monitor.update(observe(i, None, [frame, walking_out[i]])) for i in range(5)]
    verdicts.append(monitor.update(observe(5, None, [frame])))
    assert not any(v.alarm for v in verdicts), "leaving through the edge is normal"

    monitor.reset()
    person = (300, 100, 340, 200, 0.9)
    for i in range(5):
        assert not monitor.update(observe(i, None, [frame, person])).alarm
    assert monitor.update(observe(5, None, [frame])).alarm


def test_a_long_stretch_of_suspicious_frames_is_checked_only_within_the_budget():
    checked = []

    def detect(images):
        checked.append(len(images))
        return [np.zeros((0, 5), np.float32) for _ in images]

    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, 256, (72, 128, 3), dtype=np.uint8) for _ in range(8)]
    monitor = FeatureSqueezing(sample_every=10**6, budget=0.25, burst=4)
    for start in range(0, 200, 8):  # 200 frames whose floor always triggers, batches of 8
        batch = [observe(start + i, noisy[i]) for i in range(8)]
        scores = monitor.score_batch(batch, detect)
        assert all(s.reason != "not checked" for s in scores)  # due, checked or over budget
    assert 4 + 0.25 * 200 - 1 <= sum(checked) <= 4 + 0.25 * 200
    monitor.reset()
    short = [observe(i, noisy[i % 8]) for i in range(4)]  # a burst fits at once
    assert all("budget" not in s.reason for s in monitor.score_batch(short, detect))


def test_routine_samples_leave_half_the_budget_to_frames_the_trigger_picks():
    def detect(images):
        return [np.zeros((0, 5), np.float32) for _ in images]

    calm = np.full((72, 128, 3), 128, np.uint8)  # a flat frame: its floor never triggers
    noisy = np.random.default_rng(1).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    monitor = FeatureSqueezing(sample_every=1, budget=0.01, burst=8, trigger=0.5)
    routine = monitor.score_batch([observe(i, calm) for i in range(20)], detect)
    assert sum("reappear" in s.reason for s in routine) == 4, "samples stop at half the bucket"
    assert all(s.reason == "not checked (budget)" for s in routine[4:])
    attack = monitor.score_batch([observe(20 + i, noisy) for i in range(6)], detect)
    reasons = [s.reason for s in attack]
    assert sum("reappear" in r for r in reasons) == 4, "the reserve goes to triggered frames"
    assert reasons[4:] == ["not checked (budget)"] * 2
