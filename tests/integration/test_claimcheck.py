"""Images too large for a Kafka message travel through Redis, verified on the way back."""

from __future__ import annotations

import numpy as np
import pytest

from producers.frames import FrameSender, build_frame
from streams import claimcheck
from streams.clients import redis_client
from streams.events import MAX_IMAGE_BYTES
from streams.outcome_reader import OutcomeReader


@pytest.fixture
def redis(stack):
    client = redis_client(stack.settings)
    yield client
    client.close()


def test_a_stored_image_comes_back_verified(redis):
    ref, digest = claimcheck.store(redis, b"pixels" * 1000, ttl_s=60)
    assert claimcheck.fetch(redis, ref, digest) == b"pixels" * 1000
    assert 0 < redis.ttl(ref) <= 60


def test_a_swapped_image_is_detected(redis):
    ref, digest = claimcheck.store(redis, b"original", ttl_s=60)
    redis.set(ref, b"swapped")
    with pytest.raises(claimcheck.ClaimCheckError, match="do not match"):
        claimcheck.fetch(redis, ref, digest)


def test_an_expired_image_is_reported(redis):
    ref, digest = claimcheck.store(redis, b"short-lived", ttl_s=60)
    redis.delete(ref)
    with pytest.raises(claimcheck.ClaimCheckError, match="expired"):
        claimcheck.fetch(redis, ref, digest)


def test_an_oversized_frame_goes_by_reference_and_still_gets_a_prediction(
    worker, settings, keyring
):
    noisy = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    frame = build_frame("big-cam", 0, noisy, encoding="png")
    assert len(frame.image) > MAX_IMAGE_BYTES
    with OutcomeReader(settings) as reader, FrameSender(settings, keyring) as sender:
        sent = sender.send(frame)
        assert sent.image == b""
        assert sent.image_ref.startswith(claimcheck.PREFIX)
        assert sender.by_reference == 1
        sender.flush()
        outcomes = reader.wait({sent.frame_id}, timeout_s=120)
    assert outcomes.dead_letters == []
    prediction = outcomes.predictions[sent.frame_id]
    assert prediction.camera_id == "big-cam"
