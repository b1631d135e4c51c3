"""The worker process's own set-up (the worker itself runs in tests/integration)."""

from __future__ import annotations

import cv2
import pytest

from streams.worker import set_opencv_threads


@pytest.fixture
def opencv_threads():
    before = cv2.getNumThreads()
    yield
    cv2.setNumThreads(before)


def test_opencv_gets_the_threads_it_is_given(opencv_threads):
    set_opencv_threads(1)
    assert cv2.getNumThreads() == 1
    set_opencv_threads(3)
    assert cv2.getNumThreads() == 3


def test_zero_gives_opencv_back_its_own_default(opencv_threads):
    cv2.setNumThreads(-1)
    default = cv2.getNumThreads()
    set_opencv_threads(1)
    set_opencv_threads(0)
    assert cv2.getNumThreads() == default
