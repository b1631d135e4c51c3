"""Statistics of a frame shared by the monitors that ask for them: once per read-only array."""

from __future__ import annotations

import numpy as np

from detectors.monitors.base import Observation
from detectors.monitors.energy import PerturbationEnergy, residual_floor
from detectors.monitors.per_image import PerImage, per_image
from detectors.monitors.squeeze import FeatureSqueezing
from streams.events import Prediction, Timing


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def counting(value: float):
    calls: list[float] = []

    def compute() -> float:
        calls.append(value)
        return value

    return compute, calls


def test_a_read_only_array_is_computed_once_per_key():
    cache = PerImage()
    image = read_only(np.zeros((4, 4), np.uint8))
    compute, calls = counting(1.5)
    assert cache.get(image, "stat", compute) == 1.5
    assert cache.get(image, "stat", compute) == 1.5
    assert len(calls) == 1
    other, other_calls = counting(2.5)
    assert cache.get(image, ("stat", 2), other) == 2.5  # another key: computed
    assert len(other_calls) == 1
    assert (cache.hits, cache.misses) == (1, 2)


def test_a_writeable_array_is_computed_every_time():
    cache = PerImage()
    image = np.zeros((4, 4), np.uint8)
    compute, calls = counting(1.0)
    cache.get(image, "stat", compute)
    cache.get(image, "stat", compute)
    assert len(calls) == 2
    assert len(cache) == 0


def test_values_follow_the_array_not_its_contents():
    cache = PerImage()
    first = read_only(np.zeros((4, 4), np.uint8))
    twin = read_only(np.zeros((4, 4), np.uint8))
    cache.get(first, "stat", lambda: 1.0)
    assert cache.get(twin, "stat", lambda: 2.0) == 2.0


def test_a_freed_array_never_lends_its_value_to_a_new_one():
    cache = PerImage()
    for value in range(50):  # freed arrays' ids are reused; their values must not be
        image = read_only(np.full((4, 4), value, np.uint8))
        assert cache.get(image, "stat", lambda v=value: v) == value
        del image


def test_the_oldest_values_go_first():
    cache = PerImage(capacity=2)
    images = [read_only(np.zeros((2, 2), np.uint8)) for _ in range(3)]
    for i, image in enumerate(images):
        cache.get(image, "stat", lambda i=i: i)
    assert len(cache) == 2
    compute, calls = counting(9.0)
    assert cache.get(images[0], "stat", compute) == 9.0  # evicted: computed again
    assert cache.get(images[2], "stat", compute) == 2
    assert calls == [9.0]


def prediction_of() -> Prediction:
    return Prediction("f" * 32, "cam", 1, 1, "m", "1", [], Timing(), 1)


def test_energy_and_squeezings_trigger_share_one_residual_floor():
    rng = np.random.default_rng(0)
    image = read_only(rng.integers(0, 255, (72, 128, 3), dtype=np.uint8))
    expected = residual_floor(np.array(image))  # a writeable copy: computed, not shared
    misses, hits = per_image.misses, per_image.hits
    energy = PerturbationEnergy()
    assert energy.score(Observation("cam", "f" * 32, 0, 0, image=image)).value == expected
    # feature squeezing's trigger asks with the defaults, which are energy's
    squeeze = FeatureSqueezing(trigger=expected - 1e-6, sample_every=10**6)
    observation = Observation("cam", "f" * 32, 1, 0, image=image, prediction=prediction_of())
    squeeze.score_batch([observation], lambda images: [np.zeros((0, 5))] * len(images))
    assert (per_image.misses - misses, per_image.hits - hits) == (1, 1)
