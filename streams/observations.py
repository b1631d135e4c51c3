"""Raw Kafka records to monitor observations: decode, verify, and decode the image once.

Five monitor agents read each frame record, and each would otherwise decode
the record, check its signature and decode the JPEG again.
:class:`CheckedFrames` does the first two once per record, and
:class:`ImageCache` the third once per frame, even when monitors ask at the
same moment (they take the same batch at once: in a profile of a worker
each of the five was decoding every frame, docs/benchmark-log.md, "Gate
cost").  Both hold the last few hundred records, which is enough because a
worker's agents stay within a queue of each other (:mod:`streams.app`).
Only frames whose signature verified are decoded: untrusted pixels never
reach a monitor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from detectors.imaging import ImageError, decode_image
from detectors.monitors.base import Observation
from streams.claimcheck import ClaimCheckError
from streams.events import Frame, InvalidEvent, Prediction, decode
from streams.inference import ImageFetcher
from streams.once import OnceCache
from streams.signing import Keyring, Verdict

__all__ = ["CheckedFrames", "ImageCache", "frame_observation", "prediction_observation"]


class _Counted:
    """What a cache below says of itself: its size, and its asks answered from it (``hits``)
    or computed (``misses``: images decoded, records checked)."""

    _cache: OnceCache

    @property
    def capacity(self) -> int:
        return self._cache.capacity

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses


class ImageCache(_Counted):
    """A thread-safe LRU of decoded images (``capacity`` frames), each decoded once.

    Keyed by frame id and signature: a signature binds the bytes, so two
    records that share an id but not their content each get their own pixels.
    The images are read-only: every monitor gets the same array, and
    statistics of it are shared too (:mod:`detectors.monitors.per_image`).
    A thread that asks for a frame another thread is decoding waits for that
    decode instead of starting its own.

    Sharing works only while the monitors read within ``capacity`` frames of
    each other: :meth:`for_worker` sizes it from how far apart a worker's
    agents can get.
    """

    @classmethod
    def for_worker(cls, stream_buffer: int, batch_size: int) -> ImageCache:
        """A cache for a worker's monitors: one agent can be ahead of another by at most
        the other's queue (``stream_buffer`` records, :mod:`streams.app`) and the
        batch in its hands, so that, with a batch's margin, covers them (192 frames at
        the defaults, 56 MiB of 424x240 frames)."""
        return cls(capacity=stream_buffer + 2 * batch_size)

    def __init__(self, capacity: int = 192) -> None:
        self._cache: OnceCache[tuple[str, bytes], np.ndarray | None] = OnceCache(capacity)

    def get(self, frame: Frame, fetch_image: ImageFetcher | None) -> np.ndarray | None:
        """The frame's pixels, decoded at most once while cached; None when undecodable
        (not cached: a caller that waited for a failed decode tries again)."""
        return self._cache.get(
            (frame.frame_id, frame.signature), lambda: _read_only(_decode(frame, fetch_image))
        )


def _read_only(image: np.ndarray | None) -> np.ndarray | None:
    if image is not None:  # shared by every monitor, so no one may write to it
        image.flags.writeable = False
    return image


def _decode(frame: Frame, fetch_image: ImageFetcher | None) -> np.ndarray | None:
    try:
        data = frame.image
        if not data:
            if fetch_image is None:
                return None
            data = fetch_image(frame.image_ref, frame.image_sha256)
        return decode_image(data, width=frame.width, height=frame.height)
    except (ImageError, ClaimCheckError):
        return None


class CheckedFrames(_Counted):
    """Each frame record decoded and its signature checked once, for every monitor that reads it.

    faust hands every agent that reads a topic the same record, its value the
    same ``bytes`` object, and five monitors read the frames: each decoded the
    record and checked its HMAC again, a tenth of their threads' samples in a
    profile of a worker (docs/benchmarks.md, "Gate cost").  Keyed by that
    object, which the cache holds while it keeps the entry, so its ``id`` cannot
    be reused meanwhile: the same object is the same bytes.  A verdict never
    carries over to other bytes, not even to a record with the same frame id
    and signature: that one is checked on its own.

    ``keyring=None`` takes every frame as verified (tests of the monitors only).
    """

    def __init__(self, keyring: Keyring | None, capacity: int = 192) -> None:
        self.keyring = keyring
        self._cache: OnceCache[int, tuple[bytes, tuple[Frame, Verdict] | None]] = OnceCache(
            capacity
        )

    def get(self, payload: bytes) -> tuple[Frame, Verdict] | None:
        """The record's frame and its signature's verdict; None when it is no frame."""
        # The entry holds the object it was made for: while it does, no other object can
        # have that id, so what is found under ``id(payload)`` was made for ``payload``.
        return self._cache.get(id(payload), lambda: (payload, self._check(payload)))[1]

    def _check(self, payload: bytes) -> tuple[Frame, Verdict] | None:
        try:
            frame = decode(payload, Frame)
        except InvalidEvent:
            return None
        return frame, self.keyring.verify(frame) if self.keyring is not None else "ok"


def frame_observation(
    payload: bytes,
    received_ns: int,
    *,
    frames: CheckedFrames,
    images: ImageCache | None,
    fetch_image: ImageFetcher | None = None,
    delivery: str = "",
) -> Observation | None:
    """An observation of one ``pds.frames`` record, or None for a record that is no frame.

    Malformed records are the detector agent's to dead-letter; a monitor
    skips them.  ``frames`` decodes the record and checks its signature;
    ``images=None`` skips decoding the image (monitors that need no pixels).
    ``delivery`` is the record's ``partition:offset``.
    """
    checked = frames.get(payload)
    if checked is None:
        return None
    frame, verdict = checked
    image = images.get(frame, fetch_image) if images is not None and verdict == "ok" else None
    return Observation(
        camera_id=frame.camera_id,
        frame_id=frame.frame_id,
        seq=frame.seq,
        capture_ts_ns=frame.capture_ts_ns,
        received_ts_ns=received_ns,
        signature=verdict,
        frame=frame,
        image=image,
        delivery=delivery,
    )


def prediction_observation(payload: bytes, received_ns: int) -> Observation | None:
    """An observation of one ``pds.predictions`` record, or None when it is not one."""
    try:
        prediction = decode(payload, Prediction)
    except InvalidEvent:
        return None
    return Observation.of_prediction(prediction, received_ns)


def with_prediction(observation: Observation, prediction: Prediction) -> Observation:
    """The frame observation joined with its prediction."""
    return dataclasses.replace(observation, prediction=prediction)


def verified(observations: Sequence[Observation | None], only: bool) -> list[Observation]:
    """Drop non-records, and frames that failed verification when ``only``."""
    return [o for o in observations if o is not None and (not only or o.signature == "ok")]
