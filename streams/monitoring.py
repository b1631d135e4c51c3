"""Running monitors on a stream: one instance per camera, verdicts to signals, alarms to alerts.

Pure logic, no Kafka: the monitor agents (:mod:`streams.agents.monitor`),
``secmlops calibrate`` and the benchmarks all drive monitors through here,
so they behave the same everywhere.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.monitors.base import DetectFn, Monitor, Observation, Verdict
from streams.events import MAX_SIGNALS, Alert, Frame, Prediction, Signal, Signals, new_id

__all__ = ["SEVERITY", "AlertTracker", "Joiner", "MonitorBank", "pack_signals", "to_signal"]

log = logging.getLogger(__name__)

#: Encoded bytes a ``signals/1`` record is kept under (an upper bound), whatever the reasons'
#: length: well under MAX_EVENT_BYTES.
SIGNALS_BYTES = 512_000

#: How loud a monitor kind's alarms are.
SEVERITY = {"integrity": "critical", "adversarial": "critical", "health": "critical"}


class MonitorBank:
    """One monitor class, one instance per camera, each loaded with that camera's calibration.

    ``calibrations`` maps a camera id to a saved :meth:`Monitor.state`; the
    entry ``"*"`` applies to cameras without their own.  Cameras with
    neither run on the monitor's defaults.
    """

    def __init__(
        self,
        cls: type[Monitor],
        calibrations: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        resume: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.cls = cls
        self.name = cls.name
        self._calibrations = dict(calibrations or {})
        self._cameras: dict[str, Monitor] = {}
        self._resume = resume
        self._touched: set[str] = set()

    def monitor(self, camera_id: str) -> Monitor:
        """The camera's instance, created (calibrated, and resumed from ``resume``'s saved
        online state, if any) on first use."""
        monitor = self._cameras.get(camera_id)
        if monitor is None:
            monitor = self.cls()
            state = self._calibrations.get(camera_id) or self._calibrations.get("*")
            if state is not None:
                monitor.restore({**state, "online": {}})
            saved = self._resume(camera_id) if self._resume is not None else None
            if saved:
                try:
                    monitor.load_online_state(saved)
                except Exception:  # a state it cannot read must not stop the camera's frames
                    log.exception("%s: cannot resume %s; starting fresh", self.name, camera_id)
                    monitor.reset()
            self._cameras[camera_id] = monitor
        self._touched.add(camera_id)
        return monitor

    def forget(self) -> None:
        """Drop every camera's instance (each is created, and resumed, again on next use)."""
        self._cameras.clear()
        self._touched.clear()

    def checkpoint(self) -> dict[str, dict[str, Any]]:
        """The online state of each camera used since the last checkpoint."""
        out = {c: self._cameras[c].online_state() for c in self._touched if c in self._cameras}
        self._touched.clear()
        return out

    def recalibrate(self, calibrations: Mapping[str, Mapping[str, Any]]) -> None:
        """New thresholds and baselines (e.g. for a new model version), keeping online state.

        A calibration made with other parameters (``secmlops calibrate --param``) is
        loaded whole instead, and that camera's online state starts again: its
        threshold was fitted with those parameters, and state learnt under the old
        ones (a window's length, a budget's tokens) need not fit the new ones.
        """
        self._calibrations = dict(calibrations)
        for camera_id, monitor in self._cameras.items():
            state = self._calibrations.get(camera_id) or self._calibrations.get("*")
            if state is None:
                continue
            params = state.get("params") or {}
            if any(getattr(monitor, k, v) != v for k, v in params.items() if k in self.cls.params):
                monitor.restore({**state, "online": {}})
                log.info("%s: %s recalibrated with new parameters", self.name, camera_id)
                continue
            threshold = state.get("threshold")
            monitor.threshold = math.inf if threshold is None else float(threshold)
            monitor.load_calibration(state.get("calibration") or {})

    @property
    def cameras(self) -> dict[str, Monitor]:
        return dict(self._cameras)

    def verdicts(
        self, observations: Sequence[Observation], detect: DetectFn | None = None
    ) -> list[Verdict]:
        """One verdict per observation, in order; a failing monitor fails closed."""
        out: list[Verdict | None] = [None] * len(observations)
        by_camera: dict[str, list[int]] = {}
        for i, obs in enumerate(observations):
            by_camera.setdefault(obs.camera_id, []).append(i)
        for camera_id, indices in by_camera.items():
            monitor = self.monitor(camera_id)
            batch = [observations[i] for i in indices]
            try:
                scores = monitor.score_batch(batch, detect)
                verdicts = [monitor.judge(score) for score in scores]
                if len(verdicts) != len(batch):
                    raise RuntimeError(f"{len(verdicts)} scores for {len(batch)} observations")
            except Exception as exc:  # a broken monitor must not pass frames silently
                log.exception("monitor %s failed on camera %s", self.name, camera_id)
                reason = f"monitor_error: {type(exc).__name__}: {exc}"[:500]
                verdicts = [Verdict(self.name, 1e9, monitor.threshold, True, reason)] * len(batch)
            for i, verdict in zip(indices, verdicts, strict=True):
                out[i] = verdict
        return out  # type: ignore[return-value]


def pack_signals(signals: Iterable[Signal]) -> list[Signals]:
    """Signals as ``signals/1`` records: one camera's each (the topic's key), in order,
    split where a record would grow past its limits."""
    records: list[Signals] = []
    by_camera: dict[str, list[Signal]] = {}
    for signal in signals:
        by_camera.setdefault(signal.camera_id, []).append(signal)
    for batch in by_camera.values():
        chunk: list[Signal] = []
        size = 0
        for signal in batch:
            grows = 256 + 4 * len(signal.reason)  # an upper bound of its encoded size
            if chunk and (len(chunk) == MAX_SIGNALS or size + grows > SIGNALS_BYTES):
                records.append(Signals(signals=chunk))
                chunk, size = [], 0
            chunk.append(signal)
            size += grows
        records.append(Signals(signals=chunk))
    return records


def to_signal(observation: Observation, verdict: Verdict) -> Signal:
    """The ``signal/1`` event for a verdict."""
    version = observation.prediction.model_version if observation.prediction else None
    return Signal(
        frame_id=observation.frame_id,
        camera_id=observation.camera_id,
        seq=observation.seq,
        monitor=verdict.monitor,
        score=max(-1e9, min(1e9, verdict.score)),
        threshold=max(-1e9, min(1e9, verdict.threshold)),
        alarm=verdict.alarm,
        ts_ns=time.time_ns(),
        model_version=version,
        reason=verdict.reason[:2000],
        delivery=observation.delivery,
    )


@dataclass
class _Episode:
    first_seq: int
    last_seq: int
    quiet: int = 0


@dataclass
class AlertTracker:
    """Turns per-frame alarms into alerts: one when an episode starts, not one per frame.

    An episode of a monitor on a camera starts with an alarm and ends after
    ``quiet_frames`` frames without one; only its start raises an alert.
    (Deduplication across monitors and rate limits belong to the policy agents.)
    """

    kind: str
    quiet_frames: int = 30
    _episodes: dict[str, _Episode] = field(default_factory=dict)

    def update(self, observation: Observation, verdict: Verdict) -> Alert | None:
        camera = observation.camera_id
        episode = self._episodes.get(camera)
        if not verdict.alarm:
            if episode is not None:
                episode.quiet += 1
                if episode.quiet >= self.quiet_frames:
                    del self._episodes[camera]
            return None
        if episode is not None:
            episode.last_seq, episode.quiet = max(episode.last_seq, observation.seq), 0
            return None
        self._episodes[camera] = _Episode(observation.seq, observation.seq)
        return Alert(
            alert_id=new_id(),
            ts_ns=time.time_ns(),
            severity=SEVERITY.get(self.kind, "warning"),  # type: ignore[arg-type]
            source=verdict.monitor,
            message=f"{verdict.monitor} on {camera}: {verdict.reason or 'alarm'}"[:2000],
            camera_id=camera,
            first_seq=observation.seq,
            last_seq=observation.seq,
            evidence={
                "frame_id": observation.frame_id,
                "score": round(verdict.score, 6),
                "threshold": round(verdict.threshold, 6),
            },
        )


class Joiner:
    """Pairs each frame with its prediction by frame id, whichever arrives first.

    A frame id seen twice (a replayed frame) pairs twice, first with first.
    Each side waits at most ``capacity`` entries; an evicted frame had no
    prediction (the detector rejected it and dead-lettered it), so it is
    dropped from the join; an evicted prediction is handed to ``on_orphan``.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[str, list[tuple[Frame, Any]]] = OrderedDict()
        self._predictions: OrderedDict[str, list[Prediction]] = OrderedDict()
        self._sizes = [0, 0]

    @staticmethod
    def _take(waiting: OrderedDict[str, list[Any]], key: str) -> Any:
        queue = waiting.get(key)
        if not queue:
            return None
        item = queue.pop(0)
        if not queue:
            del waiting[key]
        return item

    @staticmethod
    def _evict(waiting: OrderedDict[str, list[Any]]) -> Any:
        key, queue = next(iter(waiting.items()))
        item = queue.pop(0)
        if not queue:
            del waiting[key]
        return item

    def add_frame(self, frame: Frame, extra: Any = None) -> tuple[Frame, Any, Prediction] | None:
        prediction = self._take(self._predictions, frame.frame_id)
        if prediction is not None:
            self._sizes[1] -= 1
            return frame, extra, prediction
        self._frames.setdefault(frame.frame_id, []).append((frame, extra))
        self._sizes[0] += 1
        while self._sizes[0] > self.capacity:
            self._evict(self._frames)
            self._sizes[0] -= 1
        return None

    def add_prediction(
        self, prediction: Prediction, on_orphan: Callable[[Prediction], None] | None = None
    ) -> tuple[Frame, Any, Prediction] | None:
        waiting = self._take(self._frames, prediction.frame_id)
        if waiting is not None:
            self._sizes[0] -= 1
            return waiting[0], waiting[1], prediction
        self._predictions.setdefault(prediction.frame_id, []).append(prediction)
        self._sizes[1] += 1
        while self._sizes[1] > self.capacity:
            orphan = self._evict(self._predictions)
            self._sizes[1] -= 1
            if on_orphan is not None:
                on_orphan(orphan)
        return None

    def __len__(self) -> int:
        return sum(self._sizes)
