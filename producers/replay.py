"""Replay recorded drives into Kafka as authenticated camera streams, with red-team injection.

For each source frame, in media-time order across cameras: apply the drill's
pixel injections, encode, build the frame event (next ``seq`` for the camera,
a strictly increasing capture timestamp), sign it, then deliver it, unless
an integrity injection withholds, replaces or reorders it.  With a drill,
every source frame also gets a ``pds.truth`` record saying what was done to
it.  Time spent per stage is measured, so benchmarks can say where it goes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import msgspec
from tqdm import tqdm

from producers.frames import DeliveryError, FrameSender, build_frame
from producers.injection import Drill, InjectionSpec
from producers.sources import SourceError, SourceFrame
from streams.events import Frame, Truth, encode
from streams.topics import TOPICS

__all__ = ["ReplayOptions", "ReplaySummary", "Replayer"]

STAGES = ("decode", "inject", "encode", "sign", "send")


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay: pacing (None = as fast as possible; 1.0 = real time) and encoding."""

    speed: float | None = None
    max_frames: int | None = None
    encoding: str = "jpeg"
    quality: int = 90


@dataclass
class ReplaySummary:
    """What a replay did; ``ok`` is False when anything was not delivered or it was cut short."""

    frames: int = 0
    sent: int = 0
    withheld: int = 0
    by_reference: int = 0
    megabytes: float = 0.0
    truth_records: int = 0
    cameras: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False
    elapsed_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted and self.error is None

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok, "fps": round(self.fps, 2)}


@dataclass
class _Camera:
    """Per-camera replay state."""

    seq: int = 0
    last_ts: int = 0
    history: deque = field(default_factory=deque)  # recent (seq, value) for replay attacks
    frozen: dict[int, object] = field(default_factory=dict)  # spec id -> image held
    reorder: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) held back


class Replayer:
    """Replays frames through a :class:`FrameSender` (which signs and sends them)."""

    def __init__(
        self, sender: FrameSender, options: ReplayOptions, drill: Drill | None = None
    ) -> None:
        self.sender = sender
        self.options = options
        self.drill = drill or Drill([])
        self._cameras: dict[str, _Camera] = {}
        self._lag = self.drill.max_lag()

    def run(
        self, frames: Iterable[SourceFrame], *, total: int | None = None, progress: bool = True
    ) -> ReplaySummary:
        """Replay until the frames end, ``max_frames`` is reached, or Ctrl-C; then flush."""
        summary = ReplaySummary()
        limit = self.options.max_frames
        total = min(x for x in (total, limit) if x is not None) if (total or limit) else None
        start_wall, start = time.time_ns(), time.perf_counter()
        bar = tqdm(total=total, unit="frame", desc="replay", disable=not progress, smoothing=0.1)
        try:
            for frame in frames:
                summary.stage_s["decode"] += frame.decode_s
                self._pace(frame, start)
                self._one(frame, start_wall, summary)
                bar.update(1)
                if summary.frames % 25 == 0:
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(
                        fps=f"{summary.frames / elapsed:.0f}",
                        MBps=f"{self.sender.bytes / 2**20 / elapsed:.1f}",
                    )
                if limit is not None and summary.frames >= limit:
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
        except SourceError as exc:  # e.g. a frame that does not decode, mid-stream
            summary.error = str(exc)
        finally:
            bar.close()
            for camera in self._cameras.values():
                self._flush_reorder(camera)
            t0 = time.perf_counter()
            with contextlib.suppress(DeliveryError):  # the failures are listed in the summary
                self.sender.flush()
            summary.stage_s["send"] += time.perf_counter() - t0
            summary.elapsed_s = time.perf_counter() - start
            summary.sent = self.sender.sent[TOPICS.frames.name]
            summary.megabytes = round(self.sender.bytes / 2**20, 3)
            summary.by_reference = self.sender.by_reference
            summary.failures = list(self.sender.failures)
            summary.stage_s = {k: round(v, 4) for k, v in summary.stage_s.items()}
        return summary

    def _pace(self, frame: SourceFrame, start: float) -> None:
        if self.options.speed:
            delay = start + frame.media_ns / 1e9 / self.options.speed - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def _capture_ts(self, camera: _Camera, frame: SourceFrame, start_wall: int) -> int:
        if self.options.speed:
            ts = start_wall + int(frame.media_ns / self.options.speed)
        else:
            ts = time.time_ns()
        camera.last_ts = max(ts, camera.last_ts + 1)
        return camera.last_ts

    def _one(self, frame: SourceFrame, start_wall: int, summary: ReplaySummary) -> None:
        cam_id = frame.camera_id
        camera = self._cameras.setdefault(cam_id, _Camera())
        active = self.drill.active(cam_id, frame.number)
        kinds = {spec.type: spec for spec in active}
        self.drill.start_model_drills(active)
        t0 = time.perf_counter()
        image = self._frozen_image(camera, kinds.get("frozen"), frame.image)
        image, params = self.drill.perturb(image, frame.number, active, cam_id)
        t1 = time.perf_counter()
        event = build_frame(
            cam_id,
            camera.seq,
            image,
            capture_ts_ns=self._capture_ts(camera, frame, start_wall),
            encoding=self.options.encoding,
            quality=self.options.quality,
        )
        camera.seq += 1
        t2 = time.perf_counter()
        event = self._tamper(self.sender.prepare(event), kinds)
        value = encode(event)
        t3 = time.perf_counter()
        delivered = self._deliver(camera, event, value, kinds, params)
        if self.drill:
            self.sender.send_truth(
                Truth(
                    frame_id=event.frame_id,
                    camera_id=cam_id,
                    seq=event.seq,
                    capture_ts_ns=event.capture_ts_ns,
                    injections=sorted(kinds),
                    params=params,
                    delivered=delivered,
                )
            )
            summary.truth_records += 1
        stages = summary.stage_s
        stages["inject"] += t1 - t0
        stages["encode"] += t2 - t1
        stages["sign"] += t3 - t2
        stages["send"] += time.perf_counter() - t3
        summary.frames += 1
        summary.withheld += not delivered
        summary.cameras[cam_id] = summary.cameras.get(cam_id, 0) + 1
        for kind in kinds:
            summary.injected[kind] = summary.injected.get(kind, 0) + 1

    @staticmethod
    def _frozen_image(camera: _Camera, spec: InjectionSpec | None, image: object) -> object:
        """A frozen camera keeps delivering the first image of the frozen range."""
        if spec is None:
            return image
        return camera.frozen.setdefault(id(spec), image)

    def _tamper(self, event: Frame, kinds: dict[str, InjectionSpec]) -> Frame:
        if "unsigned" in kinds:
            return msgspec.structs.replace(event, key_id="", signature=b"")
        if "forged" in kinds:
            key_id = event.key_id or "k1"
            return msgspec.structs.replace(event, key_id=key_id, signature=os.urandom(32))
        return event

    def _deliver(
        self,
        camera: _Camera,
        event: Frame,
        value: bytes,
        kinds: dict[str, InjectionSpec],
        params: dict[str, float],
    ) -> bool:
        """Send, withhold, replace or reorder the frame; True when *this* frame was sent."""
        key = event.camera_id.encode()
        if self._lag:
            camera.history.append((event.seq, value))
            while len(camera.history) > self._lag + 1:
                camera.history.popleft()
        if "reorder" not in kinds:
            self._flush_reorder(camera)
        if "drop" in kinds:
            return False
        if "replay" in kinds:
            lag = int(kinds["replay"].params["lag"])
            if len(camera.history) > lag:
                old_seq, old_value = camera.history[-1 - lag]
                params["replay.of_seq"] = float(old_seq)
                self.sender.send_raw(key, old_value)
                return False
            params["replay.of_seq"] = -1.0  # too early in the stream: nothing to replay yet
        if "reorder" in kinds:
            camera.reorder.append((key, value))
            if len(camera.reorder) >= int(kinds["reorder"].params["window"]):
                self._flush_reorder(camera)
            return True
        self.sender.send_raw(key, value)
        return True

    def _flush_reorder(self, camera: _Camera) -> None:
        """Send held frames newest first: the receiver sees them out of order."""
        while camera.reorder:
            self.sender.send_raw(*camera.reorder.pop())
