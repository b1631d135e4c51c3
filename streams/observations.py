"""Raw Kafka records to monitor observations: decode, verify, and decode the image once.

Several monitor agents read the same frames; each would otherwise decode
the JPEG again.  :class:`ImageCache` keeps the last few hundred decoded
frames of the process, so a frame is decoded once however many monitors
look at it, even when they ask at the same moment (they take the same batch
at once, and in a profile of a worker each of the five that read frames was
decoding them: docs/benchmark-log.md, "Gate cost").  Only frames whose
signature verified are decoded: untrusted pixels never reach a monitor.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from detectors.imaging import ImageError, decode_image
from detectors.monitors.base import Observation
from streams.claimcheck import ClaimCheckError
from streams.events import Frame, InvalidEvent, Prediction, decode
from streams.inference import ImageFetcher
from streams.signing import Keyring

__all__ = ["ImageCache", "frame_observation", "prediction_observation"]


class ImageCache:
    """A thread-safe LRU of decoded images (``capacity`` frames), each decoded once.

    Keyed by frame id and signature: a signature binds the bytes, so two
    records that share an id but not their content each get their own pixels.
    The images are read-only: every monitor gets the same array, and
    statistics of it are shared too (:mod:`detectors.monitors.per_image`).
    A thread that asks for a frame another thread is decoding waits for that
    decode instead of starting its own.
    """

    def __init__(self, capacity: int = 192) -> None:
        self.capacity = capacity
        self._images: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self._decoding: dict[tuple[str, bytes], threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, frame: Frame, fetch_image: ImageFetcher | None) -> np.ndarray | None:
        """The frame's pixels, decoded at most once while cached; None when undecodable."""
        key = (frame.frame_id, frame.signature)
        while True:
            with self._lock:
                image = self._images.get(key)
                if image is not None:
                    self._images.move_to_end(key)
                    self.hits += 1
                    return image
                busy = self._decoding.get(key)
                if busy is None:  # nobody is decoding it: this thread will
                    self._decoding[key] = threading.Event()
                    self.misses += 1
                    break
            busy.wait()  # then take its image; if it failed (or was evicted), try again
        image = None
        try:
            image = _decode(frame, fetch_image)
            if image is not None:  # shared by every monitor, so no one may write to it
                image.flags.writeable = False
        finally:
            with self._lock:
                if image is not None:
                    self._images[key] = image
                    while len(self._images) > self.capacity:
                        self._images.popitem(last=False)
                self._decoding.pop(key).set()
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


def frame_observation(
    payload: bytes,
    received_ns: int,
    *,
    keyring: Keyring | None,
    images: ImageCache | None,
    fetch_image: ImageFetcher | None = None,
    delivery: str = "",
) -> Observation | None:
    """An observation of one ``pds.frames`` record, or None for a record that is no frame.

    Malformed records are the detector agent's to dead-letter; a monitor
    skips them.  ``images=None`` skips decoding (monitors that need no pixels).
    ``delivery`` is the record's ``partition:offset``.
    """
    try:
        frame = decode(payload, Frame)
    except InvalidEvent:
        return None
    verdict = keyring.verify(frame) if keyring is not None else "ok"
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
