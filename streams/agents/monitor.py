"""Monitor agents: one Faust agent per enabled monitor, each a loop over its input stream.

Which monitors run is ``SECMLOPS_MONITORS`` (see
:mod:`detectors.monitors.registry`).  Each agent keeps one monitor instance
per camera (:class:`~streams.monitoring.MonitorBank`), scores every batch in
its own one-thread executor (one call per batch), sends
one ``signal/1`` per observed frame to ``pds.signals`` (one ``signals/1`` record per
camera and batch) and an ``alert/1`` to
``pds.alerts`` when a monitor starts alarming on a camera.

A monitor that runs the model (feature squeezing) keeps its own copy of the
serving version, but its model runs (only those) go to the detector's one
thread per device (:func:`streams.agents.detect.device_thread`), ahead of the
detector's queued batches.  In a thread of its own, its model ran beside the
detector's: on 2 CPU cores the two intra-op thread pools fought over the
cores, and with every monitor on the pipeline kept 0.57 of detector-only
throughput; sharing the thread, 0.80-0.88 (docs/benchmarks.md).  The price
is latency: a check waits for the detector's run in progress (on a CPU one part of a
batch, not the ones queued behind it: :mod:`streams.device_thread`).

Thresholds come from ``secmlops calibrate`` for the served model version
(:mod:`streams.calibration`), re-read every ``CALIBRATION_REFRESH_S``.  Each
camera's online state is saved to Redis on a timer, every
``SECMLOPS_MONITOR_CHECKPOINT`` seconds (if it scored anything since), when the
worker drains and when partitions are taken away, and a camera's monitor
resumes from it (:mod:`streams.checkpoints`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import Any

import faust
import numpy as np

from detectors.monitors.base import DetectFn, Monitor, Observation, Verdict
from detectors.monitors.registry import select
from model_store.registry import Registry
from model_store.signing import Verifier
from streams import claimcheck
from streams.agents.alerts import raise_alert
from streams.agents.detect import device_thread, new_model_server
from streams.app import (
    app,
    frames_and_predictions_topic,
    frames_topic,
    predictions_topic,
    signals_topic,
)
from streams.app import settings as app_settings
from streams.calibration import CALIBRATION_REFRESH_S, CalibrationStore
from streams.checkpoints import MonitorCheckpoints
from streams.clients import redis_client
from streams.events import delivery_of, encode
from streams.monitoring import AlertTracker, Joiner, MonitorBank, pack_signals, to_signal
from streams.observations import (
    CheckedFrames,
    ImageCache,
    frame_observation,
    prediction_observation,
    verified,
    with_prediction,
)
from streams.serving import ModelServer
from streams.signing import Keyring
from streams.topics import TOPICS

__all__ = ["ENABLED", "MONITOR_AGENTS", "save_checkpoints", "shared_frames"]

log = logging.getLogger(__name__)

ENABLED: list[type[Monitor]] = select(app_settings.monitors)
_images = ImageCache.for_worker(app_settings.worker_stream_buffer, app_settings.worker_batch_size)
_INPUT = {
    "frames": frames_topic,
    "predictions": predictions_topic,
    "both": frames_and_predictions_topic,
}


#: One input record: topic, value, broker time (ns), ``partition:offset``.
Record = tuple[str, bytes, int, str]
#: A batch's verdicts, and the ``pds.signals`` records (key, value) that carry them.
Scored = tuple[list[Verdict], list[tuple[bytes, bytes]]]


@cache
def _checked_frames() -> CheckedFrames:
    """The process's frame records, decoded and checked once for every monitor (made when
    the first agent starts, not at import: it needs the keys)."""
    return CheckedFrames(Keyring.from_settings(app_settings), capacity=_images.capacity)


class _Inputs:
    """Turns a batch of raw events into observations for one monitor (runs in its executor)."""

    def __init__(self, cls: type[Monitor]) -> None:
        self.cls = cls
        self.frames = _checked_frames()
        self.fetch = partial(claimcheck.fetch, redis_client(app_settings))
        self.joiner = Joiner()

    def _frame(self, payload: bytes, received: int, delivery: str) -> Observation | None:
        return frame_observation(
            payload,
            received,
            frames=self.frames,
            images=_images,
            fetch_image=self.fetch,
            delivery=delivery,
        )

    def __call__(self, batch: list[Record]) -> list[Observation]:
        consumes = self.cls.consumes
        if consumes == "predictions":
            return verified([prediction_observation(v, r) for _, v, r, _ in batch], only=False)
        if consumes == "frames":
            found = [self._frame(v, r, d) for _, v, r, d in batch]
            return verified(found, only=self.cls.verified_only)
        joined: list[Observation] = []
        for topic, value, received, delivery in batch:
            if topic == TOPICS.predictions.name:
                obs = prediction_observation(value, received)
                pair = (
                    self.joiner.add_prediction(obs.prediction) if obs and obs.prediction else None
                )
            else:
                obs = self._frame(value, received, delivery)
                if obs is None or (obs.signature != "ok" and self.cls.verified_only):
                    continue
                pair = self.joiner.add_frame(obs.frame, obs)  # type: ignore[arg-type]
            if pair is not None:
                frame_obs, prediction = pair[1], pair[2]
                joined.append(with_prediction(frame_obs, prediction))
        return joined


def _detect_in_detector_thread(server: ModelServer) -> DetectFn:
    """A ``detect`` for a monitor's own thread that runs ``server``'s model in the detector's.

    Only the model runs there, and only for the frames a monitor checks: a
    batch of unchecked frames never waits for the detector, and a checked
    one waits for at most the detector batch being run (on a CPU, one part of it:
    :data:`streams.agents.detect.CPU_BATCH_PART` frames).  When the whole
    batch ran there (the model server's refresh, then the scoring, each
    queued behind a detector batch), feature squeezing fell behind a fast
    replay by more than the gate's deadline and 36 % of the clean frames
    were held as ``missing/adversarial.squeeze``.
    """
    pool = device_thread(server.device).checks  # ahead of the detector's queued batches

    def run(images: list[np.ndarray]) -> list[np.ndarray]:
        return server.current().detector.detect_batch(images)

    def detect(images: list[np.ndarray]) -> list[np.ndarray]:
        return pool.submit(run, images).result()

    return detect


CHECKPOINTS = app_settings.monitor_checkpoint_s > 0
# Per monitor: its thread, and a save of its cameras' online state (run in that thread).
_SAVES: list[tuple[ThreadPoolExecutor, Callable[[bool], None]]] = []


@cache
def _checkpoints(name: str) -> MonitorCheckpoints:
    return MonitorCheckpoints(redis_client(app_settings), name)


def _resume(name: str) -> Callable[[str], dict[str, Any] | None] | None:
    return (lambda camera_id: _checkpoints(name).load(camera_id)) if CHECKPOINTS else None


async def save_checkpoints(*, forget: bool = False) -> None:
    """Save every monitor's camera states now, each in its own thread (after the batch in
    progress); with ``forget``, also drop the instances, to be resumed from Redis."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, save, forget) for pool, save in _SAVES))


async def _save_on_rebalance(sender: faust.App, revoked: set[Any], **_: Any) -> None:
    """Before partitions move: save, and forget, so that whoever gets a camera next
    (this worker included) resumes from the state saved here."""
    await save_checkpoints(forget=True)


def _make_agent(cls: type[Monitor]) -> faust.types.AgentT:
    bank = MonitorBank(cls, resume=_resume(cls.name))
    alerts = AlertTracker(cls.kind)
    scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"monitor-{cls.name}")

    scored_since_save = False  # read and written only in the scoring thread

    def score(observations: list[Observation], detect: DetectFn | None) -> Scored:
        """The verdicts, and the ``pds.signals`` records (key, value) that carry them."""
        nonlocal scored_since_save
        verdicts = bank.verdicts(observations, detect)
        scored_since_save = True
        signals = pack_signals(map(to_signal, observations, verdicts))
        records = [(r.signals[0].camera_id.encode(), encode(r)) for r in signals]
        return verdicts, records

    def save(forget: bool = False) -> None:
        nonlocal scored_since_save
        if CHECKPOINTS and (scored_since_save or forget):
            scored_since_save = False
            _checkpoints(cls.name).save(bank.checkpoint())
        if forget:
            bank.forget()

    _SAVES.append((scoring, save))

    async def monitor_stream(stream: faust.StreamT) -> None:
        # Keys and clients are made when the agent starts, not at import.
        inputs = _Inputs(cls)
        client = redis_client(app_settings)
        registry = Registry(client, Verifier.from_settings(app_settings))
        calibrations = CalibrationStore(client, app_settings.model_name)
        loop = asyncio.get_running_loop()
        # Its own copy of the model, run in the detector's thread (see the module's doc),
        # loaded now: loaded at the first check, behind the detector's batches in flight,
        # it made that check miss the gate's deadline on a busy worker.
        detect = None
        if cls.needs_model:
            server = new_model_server()
            await loop.run_in_executor(device_thread(server.device).checks, server.current)
            detect = _detect_in_detector_thread(server)
        version: str | None = None  # of the calibrations loaded; the scoring thread's

        def run(batch: list[Record], refresh: bool) -> tuple[list[Observation], Scored]:
            """A batch's whole work, in one call to the monitor's thread (each call is a
            round trip through the event loop)."""
            nonlocal version
            if refresh:
                version = calibrations.refresh(bank, registry.active, version)
            observations = inputs(batch)
            return observations, score(observations, detect) if observations else ([], [])

        refreshed = 0.0
        async for events in stream.take_events(
            app_settings.worker_batch_size, within=app_settings.worker_batch_wait_s
        ):
            batch = [
                (
                    e.message.topic,
                    e.message.value or b"",
                    int(e.message.timestamp * 1e9),
                    delivery_of(e.message.partition, e.message.offset),
                )
                for e in events
            ]
            refresh = time.monotonic() - refreshed > CALIBRATION_REFRESH_S
            if refresh:
                refreshed = time.monotonic()
            observations, (verdicts, records) = await loop.run_in_executor(
                scoring, run, batch, refresh
            )
            for key, value in records:
                await signals_topic.send(key=key, value=value)
            for obs, verdict in zip(observations, verdicts, strict=True):
                alert = alerts.update(obs, verdict)
                if alert is not None:
                    await raise_alert(alert)

    monitor_stream.__name__ = monitor_stream.__qualname__ = "monitor_" + cls.name.replace(".", "_")
    agent_name = f"streams.agents.monitor.{monitor_stream.__name__}"
    return app.agent(_INPUT[cls.consumes], name=agent_name, concurrency=1)(monitor_stream)


MONITOR_AGENTS = {cls.name: _make_agent(cls) for cls in ENABLED}
app.on_partitions_revoked.connect(_save_on_rebalance)


async def _save_now_and_then() -> None:
    """On a timer, not after a batch: a camera gone quiet still has its last frames saved."""
    await save_checkpoints()


if CHECKPOINTS and ENABLED:
    app.timer(interval=app_settings.monitor_checkpoint_s)(_save_now_and_then)


def shared_frames() -> dict[str, int]:
    """How well the monitors share their frames, counted since the worker started: records
    read and records decoded and checked (:class:`CheckedFrames`), images read and images
    decoded (:class:`ImageCache`).  With every monitor sharing, a frame is decoded once
    however many read it; more means they drift apart (``SECMLOPS_WORKER_STREAM_BUFFER``)."""
    checked = _checked_frames() if _checked_frames.cache_info().currsize else None
    return {
        "records_read": checked.hits + checked.misses if checked else 0,
        "records_checked": checked.misses if checked else 0,
        "images_read": _images.hits + _images.misses,
        "images_decoded": _images.misses,
    }


@app.page("/frames/")
async def frames_shared(web: Any, request: Any) -> Any:
    """:func:`shared_frames` as JSON, on the worker's web port."""
    return web.json(shared_frames())
