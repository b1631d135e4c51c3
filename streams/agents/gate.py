"""The gate agent: predictions reach ``pds.trusted`` only when every required monitor passed them.

A loop over one stream of frames, predictions and signals (co-partitioned
by camera).  The decisions are :mod:`streams.gating`'s; this module feeds
it, keeps each frame's signed bytes until its prediction is decided (they
are the evidence if it is quarantined), and publishes each decision:

* trusted: the prediction, unchanged, on ``pds.trusted``;
* quarantined: a ``quarantine/1`` record on ``pds.quarantine``, and the
  frame, prediction and evidence in the Redis quarantine for review
  (``secmlops quarantine``).

A timer decides the predictions whose deadline passed
(``SECMLOPS_GATE_DEADLINE``; missing signals fail closed unless
``SECMLOPS_GATE_ON_MISSING=open``) and raises a critical alert when a
required monitor falls silent.  All gate state lives in one object touched
only from one executor thread, so the agent and the timer never race.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import faust

from detectors.monitors.registry import select
from streams.agents.alerts import raise_alert
from streams.app import app, gate_input_topic, quarantine_topic, trusted_topic
from streams.app import settings as app_settings
from streams.clients import redis_client
from streams.events import (
    Alert,
    Frame,
    InvalidEvent,
    Prediction,
    Quarantine,
    Signal,
    decode,
    encode,
    new_id,
)
from streams.gating import Gate, GateDecision, GatePolicy, policy_kinds
from streams.quarantine import QuarantineStore, frame_ref
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["GateRunner", "gate_predictions"]

log = logging.getLogger(__name__)

KEEP_FRAMES = 4096  # signed frames kept until their prediction is decided (newest kept)
SILENT_RECOVERY = 100  # decisions with a monitor's signal before its silence counts as over

Outgoing = tuple[faust.TopicT, bytes, bytes]


class GateRunner:
    """The gate with its inputs and outputs: decode records in, Kafka records and alerts out."""

    def __init__(self, settings: Settings, store: QuarantineStore) -> None:
        required = select(settings.gate_require or settings.monitors)
        self.policy = GatePolicy(
            policy_kinds(required),
            quarantine_on=frozenset(settings.gate_quarantine_on),
            deadline_s=settings.gate_deadline_s,
            fail_open=settings.gate_fail_open,
        )
        self.store = store
        self.gate = Gate(self.policy, released=store.is_released)
        self.frames: OrderedDict[str, bytes] = OrderedDict()
        self.silent: dict[str, int] = {}  # monitor -> decisions with its signal since silence
        self.invalid = 0

    def absorb(self, batch: list[tuple[str, bytes]]) -> tuple[list[Outgoing], list[Alert]]:
        now = time.monotonic()
        decisions: list[GateDecision] = []
        for topic, value in batch:
            try:
                if topic == TOPICS.frames.name:
                    frame = decode(value, Frame)
                    self.frames[frame.frame_id] = value
                    while len(self.frames) > KEEP_FRAMES:
                        self.frames.popitem(last=False)
                elif topic == TOPICS.predictions.name:
                    decisions += self.gate.add_prediction(decode(value, Prediction), now)
                elif topic == TOPICS.signals.name:
                    decisions += self.gate.add_signal(decode(value, Signal), now)
            except InvalidEvent:
                # A bad frame is the detector's to dead-letter; predictions and signals
                # are ours and never invalid, but a stranger may write to the topic.
                self.invalid += 1
        return self.settle(decisions + self.gate.expire(now))

    def expire(self) -> tuple[list[Outgoing], list[Alert]]:
        return self.settle(self.gate.expire(time.monotonic()))

    def settle(self, decisions: list[GateDecision]) -> tuple[list[Outgoing], list[Alert]]:
        """Kafka records for the decisions (quarantined ones stored in Redis first)."""
        out: list[Outgoing] = []
        held = []
        alerts = self._silence(decisions)
        for decision in decisions:
            prediction = decision.prediction
            key = prediction.camera_id.encode()
            frame = self.frames.pop(prediction.frame_id, None)
            if decision.outcome == "trusted":
                out.append((trusted_topic, key, encode(prediction)))
                continue
            record = Quarantine(
                frame_id=prediction.frame_id,
                camera_id=prediction.camera_id,
                seq=prediction.seq,
                model_version=prediction.model_version,
                reasons=list(decision.reasons),
                scores=decision.scores,
                ts_ns=time.time_ns(),
                thumbnail_ref=frame_ref(prediction.frame_id) if frame is not None else "",
            )
            held.append((record, prediction, frame))
            out.append((quarantine_topic, key, encode(record)))
        self.store.hold(held)
        return out, alerts

    def _silence(self, decisions: list[GateDecision]) -> list[Alert]:
        """A critical alert when a required monitor stops answering, once per silence."""
        alerts = []
        for decision in decisions:
            for monitor in self.policy.required:
                if monitor in decision.missing:
                    if monitor not in self.silent:
                        alerts.append(self._silent_alert(monitor, decision))
                    self.silent[monitor] = 0
                elif monitor in self.silent:
                    self.silent[monitor] += 1
                    if self.silent[monitor] >= SILENT_RECOVERY:
                        del self.silent[monitor]
        return alerts

    def _silent_alert(self, monitor: str, decision: GateDecision) -> Alert:
        prediction = decision.prediction
        action = "trusted anyway (fail-open)" if self.policy.fail_open else "quarantined"
        return Alert(
            alert_id=new_id(),
            ts_ns=time.time_ns(),
            severity="critical",
            source="gate",
            message=(
                f"monitor {monitor} sent no signal within {self.policy.deadline_s:g} s "
                f"for frame {prediction.seq} of {prediction.camera_id}: is it running? "
                f"Frames it does not vouch for are {action}."
            ),
            camera_id=prediction.camera_id,
            first_seq=prediction.seq,
            last_seq=prediction.seq,
            evidence={"monitor": monitor, "frame_id": prediction.frame_id},
        )


_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate")


@cache
def runner() -> GateRunner:
    store = QuarantineStore(redis_client(app_settings), app_settings.quarantine_retention_s)
    return GateRunner(app_settings, store)


async def _publish(result: tuple[list[Outgoing], list[Alert]]) -> None:
    records, alerts = result
    for topic, key, value in records:
        await topic.send(key=key, value=value)
    for alert in alerts:
        await raise_alert(alert)


async def gate_predictions(stream: faust.StreamT) -> None:
    loop = asyncio.get_running_loop()
    gate = await loop.run_in_executor(_pool, runner)
    async for events in stream.take_events(
        app_settings.worker_batch_size, within=app_settings.worker_batch_wait_s
    ):
        batch = [(e.message.topic, e.message.value or b"") for e in events]
        await _publish(await loop.run_in_executor(_pool, gate.absorb, batch))


async def expire_deadlines() -> None:
    """Decide the predictions whose signals did not all come in time."""
    loop = asyncio.get_running_loop()
    gate = await loop.run_in_executor(_pool, runner)
    await _publish(await loop.run_in_executor(_pool, gate.expire))


if app_settings.gate:
    gate_predictions = app.agent(gate_input_topic, concurrency=1)(gate_predictions)
    expire_deadlines = app.timer(interval=max(0.05, app_settings.gate_deadline_s / 10))(
        expire_deadlines
    )
