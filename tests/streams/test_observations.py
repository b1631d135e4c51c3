"""Frames to observations: each record checked, and each frame's pixels decoded, once, however
many monitors ask; a verdict never carries over to other bytes."""

from __future__ import annotations

import threading
import time

import msgspec
import numpy as np
import pytest

import streams.observations as observations
from detectors.imaging import encode_image
from producers.frames import build_frame
from streams.events import encode
from streams.observations import CheckedFrames, ImageCache, frame_observation
from streams.signing import Keyring

KEYRING = Keyring({"k1": b"k" * 32}, "k1")


def frame(seq: int = 0):
    image = np.full((24, 32, 3), 40 + seq, np.uint8)
    return KEYRING.sign(build_frame("cam-1", seq, image))


@pytest.fixture
def decodes(monkeypatch):
    """Counts decodes, each slow enough that concurrent callers overlap."""
    calls: list[str] = []
    real = observations.decode_image

    def slow_decode(data, *, width, height):
        calls.append("decode")
        time.sleep(0.05)
        return real(data, width=width, height=height)

    monkeypatch.setattr(observations, "decode_image", slow_decode)
    return calls


def ask_at_once(cache: ImageCache, f, callers: int) -> list[np.ndarray | None]:
    """``callers`` threads asking for one frame at the same moment, as monitor agents do."""
    results: list[np.ndarray | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(f, None))) for _ in range(callers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    return results


def test_monitors_asking_at_once_share_one_decode(decodes):
    cache = ImageCache()
    results = ask_at_once(cache, frame(), 5)
    assert len(decodes) == 1
    assert len(results) == 5
    assert all(r is results[0] for r in results)
    assert (cache.misses, cache.hits) == (1, 4)


def test_an_undecodable_frame_is_none_for_every_caller_and_none_waits_forever(decodes):
    broken = msgspec.structs.replace(frame(), image=b"not a jpeg")
    assert ask_at_once(ImageCache(), broken, 3) == [None, None, None]


def test_records_sharing_an_id_but_not_their_bytes_get_their_own_pixels(decodes):
    cache, first = ImageCache(), frame(0)
    other = KEYRING.sign(
        msgspec.structs.replace(
            first, signature=b"", image=encode_image(np.zeros((24, 32, 3), np.uint8))
        )
    )
    assert other.frame_id == first.frame_id and other.signature != first.signature
    assert cache.get(first, None).mean() > 30
    assert cache.get(other, None).mean() < 5


def test_the_cache_keeps_the_most_recent_frames(decodes):
    cache = ImageCache(capacity=2)
    frames = [frame(i) for i in range(3)]
    for f in frames:
        cache.get(f, None)
    cache.get(frames[2], None)  # cached
    cache.get(frames[0], None)  # evicted: decoded again
    assert len(decodes) == 4


def test_shared_pixels_are_read_only(decodes):
    image = ImageCache().get(frame(), None)
    assert image is not None and not image.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        image[0, 0] = 0


def test_a_workers_cache_spans_one_agents_queue_and_two_batches():
    # Agents on one topic stay within a queue (the stream buffer) and a batch of each other.
    assert ImageCache.for_worker(stream_buffer=128, batch_size=32).capacity == 192
    assert ImageCache.for_worker(stream_buffer=256, batch_size=64).capacity == 384


class CountingKeyring(Keyring):
    def __init__(self) -> None:
        super().__init__({"k1": b"k" * 32}, "k1")
        self.checks = 0

    def verify(self, frame):
        self.checks += 1
        return super().verify(frame)


def test_a_record_read_by_five_monitors_is_decoded_and_checked_once():
    keyring = CountingKeyring()
    checked, payload = CheckedFrames(keyring), encode(frame())
    found = [checked.get(payload) for _ in range(5)]  # faust hands each agent the same bytes
    assert keyring.checks == 1
    assert all(f == found[0] for f in found) and found[0][1] == "ok"


def test_a_forged_record_with_a_verified_records_id_and_signature_is_checked_on_its_own():
    keyring = CountingKeyring()
    checked, genuine = CheckedFrames(keyring), frame()
    assert checked.get(encode(genuine))[1] == "ok"
    forged = msgspec.structs.replace(genuine, image=encode_image(np.zeros((24, 32, 3), np.uint8)))
    assert checked.get(encode(forged))[1] == "bad_signature"
    assert keyring.checks == 2


def test_equal_bytes_in_another_record_are_checked_again_not_taken_on_trust():
    keyring = CountingKeyring()
    checked, payload = CheckedFrames(keyring), encode(frame())
    checked.get(payload)
    checked.get(bytes(bytearray(payload)))  # equal, but not the record the verdict was for
    assert keyring.checks == 2


def test_a_record_that_is_no_frame_gives_no_observation():
    checked = CheckedFrames(KEYRING)
    assert checked.get(b"not a frame") is None
    assert frame_observation(b"{}", 0, frames=checked, images=None) is None


def test_the_checked_records_kept_are_the_most_recent():
    keyring = CountingKeyring()
    checked = CheckedFrames(keyring, capacity=2)
    payloads = [encode(frame(i)) for i in range(3)]
    for p in payloads:
        checked.get(p)
    checked.get(payloads[2])  # kept
    checked.get(payloads[0])  # dropped: checked again
    assert keyring.checks == 4


def test_an_observation_carries_the_checked_verdict_and_pixels_only_when_verified(decodes):
    checked, images = CheckedFrames(KEYRING), ImageCache()
    good = frame_observation(encode(frame()), 7, frames=checked, images=images, delivery="0:1")
    assert (good.signature, good.received_ts_ns, good.delivery) == ("ok", 7, "0:1")
    assert good.image is not None
    unsigned = msgspec.structs.replace(frame(1), signature=b"")
    bad = frame_observation(encode(unsigned), 8, frames=checked, images=images)
    assert bad.signature == "unsigned" and bad.image is None
