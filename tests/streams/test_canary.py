"""The canary judge: the candidate and the serving version on the same frames."""

from __future__ import annotations

import pytest

from streams.canary import CANARY_MONITOR, CanaryJudge
from streams.events import Box, Prediction, Timing


def prediction(seq: int, version: str, boxes: int, score: float = 0.9) -> Prediction:
    return Prediction(
        frame_id=f"{seq:032x}",
        camera_id="cam",
        seq=seq,
        capture_ts_ns=seq,
        model="pedestrian",
        model_version=version,
        boxes=[Box(10.0 * i, 0.0, 10.0 * i + 5, 20.0, score) for i in range(boxes)],
        timing=Timing(),
        processed_ts_ns=seq,
    )


def test_a_candidate_that_agrees_with_the_serving_version_never_alarms():
    judge = CanaryJudge(window=30, min_samples=10)
    signals = [
        judge.compare(prediction(s, "1", s % 4), prediction(s, "2", s % 4)) for s in range(60)
    ]
    assert not any(s.alarm for s in signals)
    assert {s.monitor for s in signals} == {CANARY_MONITOR}
    assert all(s.model_version == "2" for s in signals)


def test_a_blind_candidate_alarms_once_it_has_enough_paired_frames():
    judge = CanaryJudge(window=30, min_samples=10)
    signals = [judge.compare(prediction(s, "1", 3), prediction(s, "2", 0)) for s in range(20)]
    assert [s.alarm for s in signals[:9]] == [False] * 9  # not enough evidence yet
    assert all(s.alarm for s in signals[9:])
    assert "detections/frame 0.00 vs 3.00 under 1 on the same frames" in signals[-1].reason


def test_a_less_confident_candidate_alarms_too():
    judge = CanaryJudge(window=30, min_samples=10)
    signals = [
        judge.compare(prediction(s, "1", 2, 0.9), prediction(s, "2", 2, 0.6)) for s in range(10)
    ]
    assert signals[-1].alarm and "mean confidence" in signals[-1].reason


def test_a_judge_needs_sensible_parameters():
    with pytest.raises(ValueError, match="min_samples"):
        CanaryJudge(window=5, min_samples=10)
