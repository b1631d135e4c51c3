"""The detector agent: frames in, one prediction (or one dead letter) out per frame.

Batches are taken with ``take_events``, and a batch's offsets are
acknowledged only after all its outcomes are sent.  The model runs in a
one-thread executor per device so the event loop (heartbeats, commits,
timers) never blocks; on a GPU the next batch goes into the model while the
last one's outcomes are sent (:mod:`streams.inflight`); before a rebalance
commits, the batches in flight are finished (:class:`streams.app.App`).
Before each batch the served model is swapped if the registry's active
version moved (:mod:`streams.serving`); each frame's signature is
checked before its image is even decoded.  While a canary runs, the candidate
version predicts on the same batch in shadow and the two are compared
(:mod:`streams.canary`); its predictions never leave the worker.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache, partial
from typing import Any

import faust
import msgspec

from model_store.registry import Registry
from model_store.signing import Verifier
from streams import claimcheck
from streams.app import (
    acknowledge,
    app,
    control_topic,
    deadletter_topic,
    frames_topic,
    keep_unacknowledged,
    predictions_topic,
    signals_topic,
)
from streams.app import settings as app_settings
from streams.canary import CanaryJudge
from streams.clients import redis_client
from streams.cpu_lanes import CpuLanes, usable_cores
from streams.device_thread import DeviceThread, let_ahead
from streams.events import Control, InvalidEvent, Prediction, decode, delivery_of, encode
from streams.inference import predict_batch
from streams.inflight import InFlight
from streams.monitoring import pack_signals
from streams.outcomes import Rejected, dead_letter
from streams.serving import ModelServer, Served, resolve_device
from streams.signing import Keyring

__all__ = [
    "apply_control",
    "cpu_lanes",
    "detect_pedestrians",
    "device_busy_seconds",
    "device_thread",
    "model_server",
    "new_model_server",
]

log = logging.getLogger(__name__)

#: Frames of a CPU batch run at a time; between the parts, monitors' checks waiting by
#: then run (streams.device_thread.let_ahead). Behind a whole batch of 32 HOG frames, a
#: check could wait past the gate's deadline on 2 cores. SSDLite's own CPU batch is 2.
CPU_BATCH_PART = 2

_DEVICE_THREADS: dict[str, DeviceThread] = {}


def device_thread(device: str) -> DeviceThread:
    """The one thread per device that runs every model (:mod:`streams.device_thread`): the
    detector's batches, the canary's, and monitors' checks ahead of both."""
    thread = _DEVICE_THREADS.get(device)
    if thread is None:  # setdefault is atomic; a DeviceThread starts no thread until used
        thread = _DEVICE_THREADS.setdefault(device, DeviceThread(f"detector-{device}"))
    return thread


@cache
def cpu_lanes() -> CpuLanes:
    """The detector's CPU lanes (:mod:`streams.cpu_lanes`): ``SECMLOPS_WORKER_CPU_LANES``,
    one per usable core when 0."""
    return CpuLanes(app_settings.worker_cpu_lanes or usable_cores(), name="detector-lane")


def device_busy_seconds() -> dict[str, float]:
    """Seconds each device thread has spent on each lane so far, keyed ``thread/lane``
    (``detector-cpu/batches``, ``detector-cpu/checks``): the share of the model's time
    that monitors' checks take, which is their throughput cost where the model bounds."""
    return {
        f"{thread.name}/{lane}": seconds
        for thread in list(_DEVICE_THREADS.values())
        for lane, seconds in thread.busy().items()
    }


@app.page("/device/")
async def device_busy(web: Any, request: Any) -> Any:
    """:func:`device_busy_seconds` as JSON, on the worker's web port (next to ``/threads/``)."""
    return web.json(device_busy_seconds())


def new_model_server() -> ModelServer:
    """A server of the active version, verified from the registry (one per model user)."""
    registry = Registry(redis_client(app_settings), Verifier.from_settings(app_settings))
    return ModelServer(
        registry,
        app_settings.model_name,
        device=resolve_device(app_settings.device),
        half=app_settings.half,
        batch=app_settings.worker_batch_size,
    )


@cache
def model_server() -> ModelServer:
    """The detector agent's server (control commands poke it)."""
    return new_model_server()


async def _send_outcome(event: faust.EventT, outcome: Prediction | Rejected) -> None:
    message = event.message
    if isinstance(outcome, Prediction):
        # Which record it came from: the gate decides a record read again only once.
        outcome = msgspec.structs.replace(
            outcome, delivery=delivery_of(message.partition, message.offset)
        )
        try:
            await predictions_topic.send(key=message.key, value=encode(outcome))
            return
        except InvalidEvent as exc:
            outcome = Rejected("invalid_output", exc.detail, outcome.frame_id)
    record = dead_letter(
        outcome,
        payload=message.value or b"",
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
    )
    log.warning("dead letter %s@%s: %s", message.partition, message.offset, outcome.reason)
    await deadletter_topic.send(key=message.key, value=encode(record))


_judges: dict[str, CanaryJudge] = {}


async def _shadow(
    candidate: Served,
    served: list[Prediction | Rejected],
    payloads: list[bytes],
    received: list[int],
    options: dict[str, Any],
) -> None:
    """Run the canary on the batch, as the served version ran (``options`` of
    :func:`~streams.inference.predict_batch`), and signal how far it departs; never
    affects serving."""
    loop = asyncio.get_running_loop()
    judge = _judges.setdefault(candidate.version, CanaryJudge())
    try:
        shadow = await loop.run_in_executor(
            device_thread(model_server().device).batches,
            partial(predict_batch, candidate.detector, payloads, received, **options),
        )
        signals = [
            judge.compare(mine, theirs)
            for mine, theirs in zip(served, shadow, strict=True)
            if isinstance(mine, Prediction) and isinstance(theirs, Prediction)
        ]
        for record in pack_signals(signals):
            key = record.signals[0].camera_id.encode()
            await signals_topic.send(key=key, value=encode(record))
    except Exception:  # the canary is on trial, the serving path is not
        log.exception("canary %s failed on a batch", candidate.version)


# With 2 (the default), one batch is in the model while the one before it is sent, so the
# model does not wait for a busy event loop (docs/benchmarks.md, "Gate cost"); monitors'
# checks go ahead of the queued batch (streams.device_thread), so they wait for one at most
# (on a CPU, for one part of one: CPU_BATCH_PART).
_in_flight = InFlight(app_settings.worker_in_flight)
app.before_revoke.append(_in_flight.drain)


def _predict(
    server: ModelServer, payloads: list[bytes], received: list[int], **options: Any
) -> tuple[Served | None, list[Prediction | Rejected]]:
    """One batch in the detector's thread: the served version (swapped if the registry's
    active one moved), and each frame's outcome."""
    try:
        served = server.current()
        return served, predict_batch(served.detector, payloads, received, **options)
    except Exception as exc:  # never crash on one batch
        log.exception("batch of %d frames failed", len(payloads))
        return None, [Rejected("internal_error", f"{type(exc).__name__}: {exc}")] * len(payloads)


@app.agent(frames_topic, concurrency=1)
async def detect_pedestrians(stream: faust.StreamT) -> None:
    loop = asyncio.get_running_loop()
    keyring = Keyring.from_settings(app_settings)
    images = redis_client(app_settings)
    fetch_image = partial(claimcheck.fetch, images)
    server = model_server()
    pool = device_thread(server.device).batches
    gpu = server.device if server.device.startswith("cuda") else None  # nvJPEG there
    options = {"keyring": keyring, "fetch_image": fetch_image, "decode_device": gpu}
    if gpu is None:  # a CPU batch runs in parts, side by side, letting checks in between
        options.update(part=CPU_BATCH_PART, between=let_ahead, lanes=cpu_lanes())
        await loop.run_in_executor(pool, cpu_lanes().claim_thread)
    await loop.run_in_executor(pool, server.current)  # fail at start, not at the first frame

    async def finish(
        events: list[faust.EventT],
        payloads: list[bytes],
        received: list[int],
        batch: tuple[Served | None, list[Prediction | Rejected]],
    ) -> None:
        served, outcomes = batch
        for event, outcome in zip(events, outcomes, strict=True):
            await _send_outcome(event, outcome)
        if served is not None and server.shadow is not None:  # the canary sees the frames too
            await _shadow(server.shadow, outcomes, payloads, received, options)
        acknowledge(events)  # every outcome sent: the offsets may be committed

    try:
        async for events in stream.take_events(
            app_settings.worker_batch_size, within=app_settings.worker_batch_wait_s
        ):
            keep_unacknowledged(events)  # until the batch's outcomes are sent
            payloads = [event.message.value or b"" for event in events]
            received = [int(event.message.timestamp * 1e9) for event in events]
            predict = partial(_predict, server, payloads, received, **options)
            await _in_flight.submit(
                lambda predict=predict: loop.run_in_executor(pool, predict),
                partial(finish, events, payloads, received),
            )
    finally:
        _in_flight.cancel()  # a stop: what was not sent stays unacknowledged, read again


@app.agent(control_topic, concurrency=1)
async def apply_control(stream: faust.StreamT) -> None:
    """Promote and rollback commands: check the registry before the next batch."""
    async for value in stream:
        try:
            command = decode(value, Control)
        except InvalidEvent as exc:
            log.warning("ignoring an invalid control record: %s", exc)
            continue
        if command.model == app_settings.model_name:
            log.info(
                "%s %s@%s by %s: %s",
                command.command,
                command.model,
                command.version,
                command.actor,
                command.reason,
            )
            model_server().poke()
