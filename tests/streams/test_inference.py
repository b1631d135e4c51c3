"""One batch in the detector agent: every payload gets exactly one outcome, whatever it holds."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
import torch

from detectors.models.hog_opencv import OpenCVHog
from producers.frames import build_frame
from producers.synthetic import pattern_frame
from streams.cpu_lanes import CpuLanes
from streams.events import Prediction, encode
from streams.inference import predict_batch
from streams.outcomes import Rejected


class FailingDetector:
    name = "broken"
    version = "1"

    def detect_batch(self, images):
        raise RuntimeError("CUDA error: device-side assert")


class InvertedBoxDetector:
    name = "inverted"
    version = "1"

    def detect_batch(self, images):
        return [np.array([[10, 10, 5, 5, 0.9]], dtype=np.float32) for _ in images]


def payloads(n, camera="cam-1"):
    frames = [
        build_frame(camera, seq, pattern_frame(seq, width=160, height=128)) for seq in range(n)
    ]
    return frames, [encode(f) for f in frames]


def now(n):
    return [time.time_ns()] * n


def test_valid_frames_each_get_a_prediction_in_order():
    frames, raw = payloads(5)
    outcomes = predict_batch(OpenCVHog(), raw, now(5))
    assert [o.frame_id for o in outcomes] == [f.frame_id for f in frames]
    assert all(isinstance(o, Prediction) for o in outcomes)
    assert {o.model for o in outcomes} == {"hog-opencv"}
    assert all(
        o.seq == f.seq and o.capture_ts_ns == f.capture_ts_ns
        for o, f in zip(outcomes, frames, strict=True)
    )


def test_a_malformed_payload_is_rejected_without_affecting_its_neighbours():
    _, raw = payloads(3)
    raw.insert(1, b"\x93not a frame")
    outcomes = predict_batch(OpenCVHog(), raw, now(4))
    assert isinstance(outcomes[1], Rejected)
    assert outcomes[1].reason == "malformed"
    assert outcomes[1].frame_id is None
    assert [type(o) for o in outcomes] == [Prediction, Rejected, Prediction, Prediction]


def test_an_undecodable_image_is_rejected_with_its_frame_id():
    frame = build_frame("cam-1", 0, pattern_frame(0))
    bad = msgspec.structs.replace(frame, image=b"\xff\xd8\xff garbage")
    (outcome,) = predict_batch(OpenCVHog(), [encode(bad)], now(1))
    assert outcome == Rejected("undecodable_image", outcome.detail, bad.frame_id)


def test_an_image_that_lies_about_its_size_is_rejected():
    frame = build_frame("cam-1", 0, pattern_frame(0, width=160, height=128))
    liar = msgspec.structs.replace(frame, width=640, height=480)
    (outcome,) = predict_batch(OpenCVHog(), [encode(liar)], now(1))
    assert isinstance(outcome, Rejected)
    assert "differs from the declared" in outcome.detail


def test_a_model_failure_rejects_only_the_decodable_frames_of_that_batch():
    _, raw = payloads(3)
    outcomes = predict_batch(FailingDetector(), [*raw, b"junk"], now(4))
    assert [o.reason for o in outcomes] == ["inference_error"] * 3 + ["malformed"]
    assert "device-side assert" in outcomes[0].detail


def test_impossible_model_output_is_rejected_not_published():
    _, raw = payloads(2)
    outcomes = predict_batch(InvertedBoxDetector(), raw, now(2))
    assert [o.reason for o in outcomes] == ["invalid_output", "invalid_output"]


class CountingDetector:
    """Finds one box per image, the image's first pixel as its score; logs each call's size."""

    name = "counting"
    version = "1"

    def __init__(self):
        self.calls = []

    def detect_batch(self, images):
        self.calls.append(len(images))
        return [np.array([[0, 0, 8, 8, image[0, 0, 0] / 255]], np.float32) for image in images]


def test_a_batch_run_in_parts_calls_between_between_them_and_keeps_the_order():
    frames, raw = payloads(10)
    detector, log = CountingDetector(), []
    whole = predict_batch(CountingDetector(), raw, now(10))
    outcomes = predict_batch(
        detector, raw, now(10), part=4, between=lambda: log.append(len(detector.calls))
    )
    assert detector.calls == [4, 4, 2]
    assert log == [1, 2]  # after each part but the last
    assert [o.frame_id for o in outcomes] == [f.frame_id for f in frames]
    assert [o.boxes for o in outcomes] == [o.boxes for o in whole]


def test_a_batch_run_on_two_lanes_gives_the_same_outcomes_in_order():
    frames, raw = payloads(9)
    whole = predict_batch(CountingDetector(), raw, now(9))
    lanes = CpuLanes(2, name="test-lane")
    threads = torch.get_num_threads()
    try:
        outcomes = predict_batch(CountingDetector(), raw, now(9), part=2, lanes=lanes)
    finally:
        lanes.shutdown()
        torch.set_num_threads(threads)
    assert [o.frame_id for o in outcomes] == [f.frame_id for f in frames]
    assert [o.boxes for o in outcomes] == [o.boxes for o in whole]


def test_time_spent_letting_others_run_is_not_counted_as_inference():
    _, raw = payloads(4)
    outcomes = predict_batch(
        CountingDetector(), raw, now(4), part=1, between=lambda: time.sleep(0.1)
    )
    assert all(o.timing.infer_ms < 50 for o in outcomes)  # 0.3 s went to `between`


def test_timing_breakdown_is_filled_in():
    _, raw = payloads(2)
    sent = time.time_ns() - 5_000_000  # reached the broker 5 ms ago
    outcomes = predict_batch(OpenCVHog(), raw, [sent, sent])
    for o in outcomes:
        assert o.timing.queue_ms >= 5.0
        assert o.timing.decode_ms > 0
        assert o.timing.infer_ms > 0


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_batches(n):
    _, raw = payloads(n)
    assert len(predict_batch(OpenCVHog(), raw, now(n))) == n


class TensorDetector:
    """Takes decoded tensors, as a GPU model does, and records them."""

    name = "tensors"
    version = "1"

    def __init__(self):
        self.seen = []

    def detect_batch(self, images):
        raise AssertionError("the tensor path must be used")

    def detect_tensors(self, images):
        self.seen = images
        return [np.zeros((0, 5), np.float32) for _ in images]


def test_the_device_decode_path_hands_the_detector_bgr_tensors_of_the_right_pixels():
    import cv2

    jpeg_frame = build_frame("cam-1", 0, pattern_frame(0, width=64, height=48))
    png_frame = build_frame("cam-1", 1, pattern_frame(1, width=32, height=32), encoding="png")
    broken = msgspec.structs.replace(jpeg_frame, image=b"\xff\xd8 broken", frame_id="a" * 32)
    detector = TensorDetector()
    outcomes = predict_batch(
        detector, [encode(f) for f in (jpeg_frame, broken, png_frame)], now(3), decode_device="cpu"
    )
    assert [type(o).__name__ for o in outcomes] == ["Prediction", "Rejected", "Prediction"]
    assert outcomes[1].reason == "undecodable_image"
    first, second = detector.seen
    expected = cv2.imdecode(np.frombuffer(jpeg_frame.image, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(first.permute(1, 2, 0).numpy(), expected)
    assert tuple(second.shape) == (3, 32, 32)
