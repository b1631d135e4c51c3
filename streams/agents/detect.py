"""The detector agent: frames in, one prediction (or one dead letter) out per frame.

Batches are taken with ``take_events`` so that offsets are acknowledged only
after the whole batch has been handled, and the model runs in a one-thread
executor so the event loop (heartbeats, commits, timers) never blocks.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import faust

from detectors.models.base import Detector
from detectors.models.hog_opencv import OpenCVHog
from streams import claimcheck
from streams.app import app, deadletter_topic, frames_topic, predictions_topic, settings
from streams.clients import redis_client
from streams.events import InvalidEvent, Prediction, encode
from streams.inference import predict_batch
from streams.outcomes import Rejected, dead_letter

__all__ = ["detect_pedestrians"]

log = logging.getLogger(__name__)

# One thread per device: the model is not re-entrant and a second thread on
# the same device would only contend for it.
_cpu_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-cpu")


def _load_detector() -> Detector:
    detector = OpenCVHog()
    log.info("detector %s %s loaded", detector.name, detector.version)
    return detector


async def _send_outcome(event: faust.EventT, outcome: Prediction | Rejected) -> None:
    message = event.message
    if isinstance(outcome, Prediction):
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


@app.agent(frames_topic, concurrency=1)
async def detect_pedestrians(stream: faust.StreamT) -> None:
    loop = asyncio.get_running_loop()
    detector = await loop.run_in_executor(_cpu_executor, _load_detector)
    images = redis_client(settings)

    def fetch_image(ref: str, sha256: str) -> bytes:
        return claimcheck.fetch(images, ref, sha256)

    async for events in stream.take_events(
        settings.worker_batch_size, within=settings.worker_batch_wait_s
    ):
        payloads = [event.message.value or b"" for event in events]
        received = [int(event.message.timestamp * 1e9) for event in events]
        try:
            outcomes = await loop.run_in_executor(
                _cpu_executor, predict_batch, detector, payloads, received, fetch_image
            )
        except Exception as exc:
            log.exception("batch of %d frames failed", len(events))
            outcomes = [Rejected("internal_error", f"{type(exc).__name__}: {exc}")] * len(events)
        for event, outcome in zip(events, outcomes, strict=True):
            await _send_outcome(event, outcome)
