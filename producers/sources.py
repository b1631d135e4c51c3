"""Recorded footage as a stream of frames: video files and image folders, one camera each.

Several sources replay together, interleaved by media time, as several
cameras would deliver them.  Every problem with a source (missing, not a
video, empty, a frame that does not decode) is a :class:`SourceError` that
names the file, raised before or at the frame where it happens.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFolderSource",
    "SourceError",
    "SourceFrame",
    "VideoSource",
    "interleave",
    "open_source",
    "prefetch",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(ValueError):
    """A source cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class SourceFrame:
    """One decoded frame: ``number`` is its position in the file, ``media_ns`` its media time."""

    camera_id: str
    number: int
    media_ns: int
    image: np.ndarray
    decode_s: float


def _resize(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@dataclass
class _Footage:
    """What every source has: where it is, whose camera, which frames, at what size."""

    path: Path
    camera_id: str
    start: int = 0
    end: int | None = None
    loop: bool = False
    resize: tuple[int, int] | None = None


@dataclass
class VideoSource(_Footage):
    """A video file OpenCV can decode, frames ``[start, end)``, optionally looped."""

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise SourceError(f"{self.path}: OpenCV cannot open it as a video")
            self.fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
            self.length = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            ok, _ = capture.read()
            if not ok:
                raise SourceError(f"{self.path}: no decodable frame (not a video, or corrupt)")
        finally:
            capture.release()
        if self.length is not None and self.start >= self.length:
            raise SourceError(
                f"{self.path}: start frame {self.start} is past its {self.length} frames"
            )

    @property
    def expected(self) -> int | None:
        """Frames per pass, when the container says how many it holds."""
        if self.length is None:
            return None
        return min(self.end or self.length, self.length) - self.start

    def frames(self) -> Iterator[SourceFrame]:
        frame_ns = int(1e9 / self.fps)
        offset = 0
        while True:
            capture = cv2.VideoCapture(str(self.path))
            try:
                for _ in range(self.start):  # grab() skips without decoding pixels
                    if not capture.grab():
                        raise SourceError(f"{self.path}: ended before start frame {self.start}")
                number = self.start
                while self.end is None or number < self.end:
                    t0 = time.perf_counter()
                    ok, image = capture.read()
                    if not ok:
                        if self.length is not None and number < self.length - 1:
                            raise SourceError(
                                f"{self.path}: frame {number} of {self.length} does not decode"
                            )
                        break
                    image = _resize(image, self.resize)
                    yield SourceFrame(
                        self.camera_id,
                        number,
                        offset + (number - self.start) * frame_ns,
                        image,
                        time.perf_counter() - t0,
                    )
                    number += 1
            finally:
                capture.release()
            if not self.loop:
                return
            offset += (number - self.start) * frame_ns


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


@dataclass
class ImageFolderSource(_Footage):
    """A folder of images in natural name order; media times from a file or a frame rate.

    The optional timestamps file has one line per image, ``<file name>
    <seconds>`` or just ``<seconds>`` in the images' order.
    """

    fps: float = 30.0
    timestamps: Path | None = None

    def __post_init__(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such folder")
        self.files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
        )
        if not self.files:
            raise SourceError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self.length = len(self.files)
        self.times_ns = self._read_times() if self.timestamps else None
        if self.start >= self.length:
            raise SourceError(
                f"{self.path}: start frame {self.start} is past its {self.length} images"
            )

    def _read_times(self) -> list[int]:
        assert self.timestamps is not None  # noqa: S101 - checked by the caller
        try:
            lines = [ln.split() for ln in self.timestamps.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise SourceError(f"{self.timestamps}: {exc.strerror or exc}") from None
        if len(lines) != self.length:
            raise SourceError(
                f"{self.timestamps}: {len(lines)} timestamps for {self.length} images"
            )
        try:
            times = [int(float(parts[-1]) * 1e9) for parts in lines]
        except ValueError:
            raise SourceError(f"{self.timestamps}: each line must end with seconds") from None
        if any(b < a for a, b in itertools.pairwise(times)):
            raise SourceError(f"{self.timestamps}: timestamps must not decrease")
        return [t - times[0] for t in times]

    @property
    def expected(self) -> int:
        return min(self.end or self.length, self.length) - self.start

    def frames(self) -> Iterator[SourceFrame]:
        stop = min(self.end or self.length, self.length)
        period = int(1e9 / self.fps)
        offset = 0
        while True:
            for number in range(self.start, stop):
                t0 = time.perf_counter()
                image = cv2.imread(str(self.files[number]), cv2.IMREAD_COLOR)
                if image is None:
                    raise SourceError(f"{self.files[number]}: does not decode as an image")
                base = self.times_ns[number] if self.times_ns else number * period
                first = self.times_ns[self.start] if self.times_ns else self.start * period
                yield SourceFrame(
                    self.camera_id,
                    number,
                    offset + base - first,
                    _resize(image, self.resize),
                    time.perf_counter() - t0,
                )
            if not self.loop:
                return
            offset += (stop - self.start) * period


def open_source(
    path: Path,
    camera_id: str,
    *,
    start: int = 0,
    end: int | None = None,
    loop: bool = False,
    resize: tuple[int, int] | None = None,
    timestamps: Path | None = None,
) -> VideoSource | ImageFolderSource:
    """A folder becomes an image source, anything else a video source."""
    if path.is_dir():
        return ImageFolderSource(path, camera_id, start, end, loop, resize, timestamps=timestamps)
    if timestamps is not None:
        raise SourceError(f"{path}: --timestamps applies to image folders only")
    return VideoSource(path, camera_id, start, end, loop, resize)


def interleave(sources: Sequence[VideoSource | ImageFolderSource]) -> Iterator[SourceFrame]:
    """All sources' frames in media-time order (ties keep the sources' order)."""
    streams = [
        ((frame.media_ns, index, frame) for frame in source.frames())
        for index, source in enumerate(sources)
    ]
    for _, _, frame in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield frame


_END = object()


def prefetch(frames: Iterator[SourceFrame], depth: int = 16) -> Iterator[SourceFrame]:
    """Decode ahead in a background thread, so decoding overlaps encoding and sending.

    OpenCV releases the GIL while it decodes, so on a machine with two or more
    cores the replay is no longer decode, then encode, then send, one after
    another.  Errors (a frame that does not decode) are raised here, in order;
    closing the generator stops the thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        buffer.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="source-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
