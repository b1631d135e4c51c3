"""OpenCV's HOG people detector behind the Detector interface."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.models.base import Detector
from detectors.models.hog_opencv import OpenCVHog
from producers.synthetic import pattern_frame


def test_it_implements_the_detector_interface():
    assert isinstance(OpenCVHog(), Detector)


def test_results_are_one_float32_n_by_5_array_per_image():
    images = [pattern_frame(i, width=320, height=240) for i in range(3)]
    out = OpenCVHog().detect_batch(images)
    assert len(out) == 3
    for boxes in out:
        assert boxes.dtype == np.float32
        assert boxes.ndim == 2
        assert boxes.shape[1] == 5


def test_boxes_match_opencv_and_stay_inside_the_image():
    import cv2

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (256, 192, 3), dtype=np.uint8)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    rects, _ = hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05)
    boxes = OpenCVHog().detect_batch([image])[0]
    assert len(boxes) == len(rects)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 192).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_images_smaller_than_one_window_have_no_detections():
    assert OpenCVHog().detect_batch([np.zeros((100, 50, 3), np.uint8)])[0].shape == (0, 5)


@pytest.mark.parametrize("kwargs", [{"win_stride": 0}, {"padding": -1}, {"scale": 1.0}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="need"):
        OpenCVHog(**kwargs)
