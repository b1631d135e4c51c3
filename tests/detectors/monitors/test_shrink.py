"""Shrinking frames by integer factors: block means, the remainder dropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detectors.monitors.shrink import factor_for, shrink, shrink_to


def smooth_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A camera-like frame: a coarse random scene scaled up, with a little noise."""
    rng = np.random.default_rng(seed)
    scene = cv2.resize(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8), (width, height))
    return np.clip(scene + rng.normal(0, 3, scene.shape), 0, 255).astype(np.uint8)


def test_each_pixel_is_the_mean_of_its_block_and_the_remainder_is_dropped_evenly():
    image = smooth_frame(241, 426)
    small = shrink(image, 4)
    assert small.shape == (60, 106, 3)
    # 1 row and 2 columns left over: the first column goes, the rest from the far edges
    blocks = image[:240, 1:425].reshape(60, 4, 106, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small - blocks).max() <= 0.5 + 1e-9  # rounded to uint8


def test_factor_one_returns_the_frame_itself():
    image = smooth_frame(36, 64)
    assert shrink(image, 1) is image


def test_a_factor_larger_than_the_frame_leaves_one_pixel():
    assert shrink(smooth_frame(4, 6), 10).shape == (1, 1, 3)


def test_a_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        shrink(smooth_frame(4, 6), 0)


@pytest.mark.parametrize(
    ("length", "target", "factor"), [(640, 320, 2), (639, 320, 1), (1920, 320, 6), (100, 320, 1)]
)
def test_the_factor_keeps_the_length_at_least_the_target(length, target, factor):
    assert factor_for(length, target) == factor


@pytest.mark.parametrize("size", [(640, 360), (424, 240), (1280, 720), (1000, 563), (50, 30)])
def test_an_exact_size_is_close_to_resampling_the_whole_frame(size):
    image = smooth_frame(size[1], size[0], seed=1)
    ours = shrink_to(image, (64, 36)).astype(np.float64)
    direct = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert ours.shape == direct.shape
    # The dropped edge shifts the copy by well under a thumbnail pixel: the two differ
    # by far less than neighbouring pixels of the thumbnail do.
    neighbours = np.abs(np.diff(direct, axis=1)).mean()
    assert np.abs(ours - direct).mean() < neighbours / 3


def test_an_exact_multiple_gives_what_opencv_gives():
    image = smooth_frame(360, 640, seed=2)
    direct = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
    assert np.array_equal(shrink_to(image, (64, 36)), direct)
