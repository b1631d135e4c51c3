"""Frames to observations: each frame's pixels decoded once, however many monitors ask."""

from __future__ import annotations

import threading
import time

import msgspec
import numpy as np
import pytest

import streams.observations as observations
from detectors.imaging import encode_image
from producers.frames import build_frame
from streams.observations import ImageCache
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
