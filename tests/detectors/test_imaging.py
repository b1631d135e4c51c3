"""Untrusted image bytes become pixels only when they are what they claim to be."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.imaging import ImageError, decode_image, encode_jpeg
from producers.synthetic import pattern_frame


def test_jpeg_round_trip_keeps_size_and_content():
    image = pattern_frame(3, width=96, height=64)
    decoded = decode_image(encode_jpeg(image, 95), width=96, height=64)
    assert decoded.shape == (64, 96, 3)
    assert np.abs(decoded.astype(int) - image.astype(int)).mean() < 6


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff", b"GIF89a....", bytes(range(256)) * 4])
def test_garbage_does_not_decode(data):
    with pytest.raises(ImageError, match="do not decode"):
        decode_image(data, width=10, height=10)


def test_a_declared_size_that_differs_is_refused():
    data = encode_jpeg(pattern_frame(0, width=64, height=48))
    with pytest.raises(ImageError, match="differs"):
        decode_image(data, width=48, height=64)


def test_jpeg_quality_is_checked():
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(pattern_frame(0), 0)
