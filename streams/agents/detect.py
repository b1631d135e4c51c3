"""The detector agent: frames in, one prediction (or one dead letter) out per frame.

Batches are taken with ``take_events`` so that offsets are acknowledged only
after the whole batch has been handled; the model runs in a one-thread
executor per device so the event loop (heartbeats, commits, timers) never
blocks.  Before each batch the served model is swapped if the registry's
active version moved (:mod:`streams.serving`); each frame's signature is
checked before its image is even decoded.  While a canary runs, the candidate
version predicts on the same batch in shadow and the two are compared
(:mod:`streams.canary`); its predictions never leave the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial

import faust
import msgspec

from model_store.registry import Registry
from model_store.signing import Verifier
from streams import claimcheck
from streams.app import (
    app,
    control_topic,
    deadletter_topic,
    frames_topic,
    predictions_topic,
    signals_topic,
)
from streams.app import settings as app_settings
from streams.canary import CanaryJudge
from streams.clients import redis_client
from streams.events import Control, InvalidEvent, Prediction, decode, delivery_of, encode
from streams.inference import predict_batch
from streams.monitoring import pack_signals
from streams.outcomes import Rejected, dead_letter
from streams.serving import ModelServer, Served, resolve_device
from streams.signing import Keyring

__all__ = ["apply_control", "detect_pedestrians", "executor", "model_server", "new_model_server"]

log = logging.getLogger(__name__)


@cache
def executor(device: str) -> ThreadPoolExecutor:
    """One thread per device: a model is not re-entrant, and a second thread would contend."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"detector-{device}")


def new_model_server() -> ModelServer:
    """A server of the active version, verified from the registry (one per model user)."""
    registry = Registry(redis_client(app_settings), Verifier.from_settings(app_settings))
    return ModelServer(
        registry,
        app_settings.model_name,
        device=resolve_device(app_settings.device),
        half=app_settings.half,
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
    keyring: Keyring,
    fetch_image: Callable[..., bytes],
    gpu: str | None,
) -> None:
    """Run the canary on the batch and signal how far it departs; never affects serving."""
    loop = asyncio.get_running_loop()
    judge = _judges.setdefault(candidate.version, CanaryJudge())
    try:
        shadow = await loop.run_in_executor(
            executor(model_server().device),
            partial(
                predict_batch,
                candidate.detector,
                payloads,
                received,
                keyring=keyring,
                fetch_image=fetch_image,
                decode_device=gpu,
            ),
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


@app.agent(frames_topic, concurrency=1)
async def detect_pedestrians(stream: faust.StreamT) -> None:
    loop = asyncio.get_running_loop()
    keyring = Keyring.from_settings(app_settings)
    images = redis_client(app_settings)
    fetch_image = partial(claimcheck.fetch, images)
    server = model_server()
    pool = executor(server.device)
    await loop.run_in_executor(pool, server.current)  # fail at start, not at the first frame
    gpu = server.device if server.device.startswith("cuda") else None  # nvJPEG there
    async for events in stream.take_events(
        app_settings.worker_batch_size, within=app_settings.worker_batch_wait_s
    ):
        payloads = [event.message.value or b"" for event in events]
        received = [int(event.message.timestamp * 1e9) for event in events]
        try:
            served = await loop.run_in_executor(pool, server.current)
            outcomes = await loop.run_in_executor(
                pool,
                partial(
                    predict_batch,
                    served.detector,
                    payloads,
                    received,
                    keyring=keyring,
                    fetch_image=fetch_image,
                    decode_device=gpu,
                ),
            )
        except Exception as exc:  # never crash on one batch
            log.exception("batch of %d frames failed", len(events))
            outcomes = [Rejected("internal_error", f"{type(exc).__name__}: {exc}")] * len(events)
        for event, outcome in zip(events, outcomes, strict=True):
            await _send_outcome(event, outcome)
        if server.shadow is not None:  # a canary runs: the candidate sees the same frames
            await _shadow(server.shadow, outcomes, payloads, received, keyring, fetch_image, gpu)


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
