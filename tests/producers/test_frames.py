"""Frames built from images are valid events that decode back to the same pixels."""

from __future__ import annotations

from detectors.imaging import decode_image
from producers.frames import build_frame
from producers.synthetic import pattern_frame
from streams.events import Frame, decode, encode


def test_a_built_frame_is_a_valid_event_with_the_image_geometry():
    image = pattern_frame(5, width=200, height=100)
    frame = build_frame("cam-9", 5, image, capture_ts_ns=123)
    assert decode(encode(frame), Frame) == frame
    assert (frame.width, frame.height, frame.seq, frame.capture_ts_ns) == (200, 100, 5, 123)
    assert decode_image(frame.image, width=200, height=100).shape == (100, 200, 3)


def test_every_frame_gets_its_own_id():
    image = pattern_frame(0)
    assert build_frame("c", 0, image).frame_id != build_frame("c", 0, image).frame_id


def test_the_pattern_moves_between_frames():
    assert (pattern_frame(0) != pattern_frame(1)).mean() > 0.5


class FailingFuture:
    def __init__(self, error):
        self.error = error

    def add_errback(self, callback):
        callback(self.error)
        return self


class BrokenProducer:
    """A producer whose broker never acknowledges (a pure unit-test double)."""

    def __init__(self, **_):
        self.closed = False

    def send(self, topic, key=None, value=None):
        if key == b"full":
            raise TimeoutError("buffer full")
        return FailingFuture(RuntimeError("NotEnoughReplicas"))

    def flush(self, timeout=None):
        """Nothing is ever acknowledged, so there is nothing to wait for."""

    def close(self, timeout=None):
        self.closed = True


def test_undelivered_frames_are_counted_and_reported_on_flush(monkeypatch):
    import pytest

    from producers.frames import DeliveryError, FrameSender
    from streams.settings import Settings

    monkeypatch.setattr("producers.frames.producer", lambda settings, **kw: BrokenProducer())
    sender = FrameSender(Settings.from_env({}))
    sender.send(build_frame("cam", 0, pattern_frame(0)))
    sender.send_raw(b"full", b"x")
    assert len(sender.failures) == 2
    with pytest.raises(
        DeliveryError, match=r"2 records not delivered: pds\.frames: NotEnoughReplicas"
    ):
        sender.flush()
