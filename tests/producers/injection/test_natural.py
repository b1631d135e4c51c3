"""Natural shifts change the image in the expected direction, scaled by their strength."""

from __future__ import annotations

import numpy as np
import pytest

from producers.injection.natural import NATURAL
from producers.injection.spec import parse_spec
from producers.synthetic import pattern_frame


def apply(kind, image, strength=1.0, text=None):
    spec = parse_spec(text or kind)
    return NATURAL[kind](image, strength, spec.params, 0)


def sharpness(image):
    grey = image.mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).mean())


@pytest.fixture
def image():
    return pattern_frame(7, width=160, height=120)


@pytest.mark.parametrize("kind", sorted(NATURAL))
def test_zero_strength_is_a_no_op_or_nearly(kind, image):
    out = apply(kind, image, strength=0.0)
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 1.5


def test_brightness_adds_light(image):
    assert apply("brightness", image).mean() > image.mean() + 40


def test_contrast_below_one_narrows_the_spread(image):
    assert apply("contrast", image).std() < image.std() * 0.6


def test_fog_brightens_and_flattens_more_at_the_top(image):
    out = apply("fog", image).astype(float)
    assert out.mean() > image.mean()
    assert out[:10].std() < out[-10:].std()


def test_blur_and_jpeg_remove_detail(image):
    assert sharpness(apply("blur", image)) < sharpness(image) * 0.6
    assert np.abs(apply("jpeg", image).astype(int) - image.astype(int)).mean() > 1


def test_noise_is_reproducible_per_frame(image):
    a, b = apply("noise", image), apply("noise", image)
    assert (a == b).all()
    assert np.abs(a.astype(int) - image.astype(int)).mean() > 5


def test_half_strength_is_a_weaker_shift(image):
    full = apply("brightness", image).mean() - image.mean()
    half = apply("brightness", image, 0.5).mean() - image.mean()
    assert 0.4 * full < half < 0.6 * full
