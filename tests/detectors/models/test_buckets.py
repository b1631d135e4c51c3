"""Batch-size buckets: few shapes for the GPU, every frame kept, padding dropped."""

from __future__ import annotations

import pytest
import torch

from detectors.models.base import warm_up
from detectors.models.buckets import bucket, bucket_sizes, pad_batch


def test_a_batch_is_padded_to_the_next_power_of_8_from_8_up_but_never_past_the_largest():
    # A lone frame goes in a batch of 8: on the H200 that costs what a batch of 1 does,
    # and it saves a shape (seconds of cuDNN planning at each load).
    sizes = [bucket(n, 64) for n in (1, 2, 7, 8, 9, 17, 63, 64)]
    assert sizes == [8, 8, 8, 8, 64, 64, 64, 64]
    assert bucket(40, 48) == 48 and bucket(1, 6) == 6 and bucket(6, 6) == 6


def test_the_sizes_to_warm_up_are_every_bucket_a_batch_can_land_in():
    for largest in (1, 2, 3, 48, 64, 100):
        sizes = bucket_sizes(largest)
        assert sizes == sorted({bucket(n, largest) for n in range(1, largest + 1)})
        assert sizes[-1] == largest and len(sizes) <= 1 + (largest.bit_length() - 1) // 3


@pytest.mark.parametrize("n", [0, 65])
def test_a_batch_that_is_empty_or_too_big_is_refused(n):
    with pytest.raises(ValueError, match="does not fit"):
        bucket(n, 64)


def test_padding_appends_zero_rows_and_keeps_the_frames_as_they_were():
    stack = torch.arange(3 * 2 * 2, dtype=torch.uint8).reshape(3, 2, 2) + 1
    padded = pad_batch(stack, 64)
    assert padded.shape == (8, 2, 2) and padded.dtype == torch.uint8
    assert torch.equal(padded[:3], stack) and not padded[3:].any()
    assert pad_batch(padded, 64) is padded  # already a bucket: no copy


def test_warm_up_asks_the_detector_when_it_can_and_costs_nothing_when_it_cannot():
    class Plain:
        name, version = "plain", "1"

        def detect_batch(self, images):
            return []

    class Warming(Plain):
        def warm_up(self):
            return 1.5

    assert warm_up(Plain()) == 0.0
    assert warm_up(Warming()) == 1.5
