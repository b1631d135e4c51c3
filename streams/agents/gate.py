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

Once a frame's outcome is on the broker, its frame record goes into a ledger
in Redis (:mod:`streams.decided`): a worker killed before its offsets are
committed leaves records that its successor reads again, and the successor's
gate drops the predictions of those the ledger holds instead of publishing
their outcomes a second time.

Predictions and signals stay unacknowledged until their frame is decided
(:mod:`streams.held`), so a worker killed with frames in the gate loses
none: their offsets were never committed, and the next owner of the
partition reads them again.  On a rebalance faust seeks every partition
back to its committed offset (what was decided is committed just before, by
:class:`streams.app.App`), so the gate then forgets what it held.  A record
read again is decided once (:class:`streams.gating.Gate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import faust
import redis

from detectors.monitors.registry import select
from streams.agents.alerts import raise_alert
from streams.app import (
    acknowledge,
    app,
    gate_input_topic,
    keep_unacknowledged,
    quarantine_topic,
    trusted_topic,
)
from streams.app import settings as app_settings
from streams.clients import redis_client
from streams.decided import DecidedLedger
from streams.events import (
    Alert,
    Frame,
    InvalidEvent,
    Prediction,
    Quarantine,
    decode,
    encode,
    new_id,
    signals_in,
)
from streams.gating import Gate, GateDecision, GatePolicy, policy_kinds
from streams.held import HeldRecords
from streams.quarantine import QuarantineStore, frame_ref
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["GateHold", "GateRunner", "GateStep", "gate_predictions"]

log = logging.getLogger(__name__)

KEEP_FRAMES = 4096  # signed frames kept until their prediction is decided (newest kept)
SILENT_RECOVERY = 100  # decisions with a monitor's signal before its silence counts as over

Outgoing = tuple[faust.TopicT, bytes, bytes]


@dataclass
class GateStep:
    """What one step of the gate gives back: records to send, alerts to raise, the input
    records (their tokens) that may now be acknowledged, after the records are sent, and
    the frame records decided (``(delivery, frame_id)``), for the ledger once they are."""

    records: list[Outgoing] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    release: list[Any] = field(default_factory=list)
    decided: list[tuple[str, str]] = field(default_factory=list)


class GateRunner:
    """The gate with its inputs and outputs: decoded records in, Kafka records and alerts out.

    Each input comes with an opaque token (the agent's faust event).  A
    prediction's or a signals record's token is held until nothing of its
    frames waits in the gate any more; every other token is released at once.
    """

    def __init__(
        self, settings: Settings, store: QuarantineStore, ledger: DecidedLedger | None = None
    ) -> None:
        required = select(settings.gate_require or settings.monitors)
        self.policy = GatePolicy(
            policy_kinds(required),
            quarantine_on=frozenset(settings.gate_quarantine_on),
            deadline_s=settings.gate_deadline_s,
            fail_open=settings.gate_fail_open,
        )
        self.store = store
        self.ledger = ledger
        self.ledger_errors = 0
        self.gate = Gate(
            self.policy, released=store.is_released, signal_ttl_s=settings.gate_signal_ttl_s
        )
        self.frames: OrderedDict[str, bytes] = OrderedDict()
        self.silent: dict[str, int] = {}  # monitor -> decisions with its signal since silence
        self.invalid = 0
        self.held: HeldRecords[Any] = HeldRecords()

    def absorb(self, batch: list[tuple[str, bytes, Any]]) -> GateStep:
        predictions: dict[int, Prediction] = {}  # by position in the batch; invalid ones left out
        for i, (topic, value, _) in enumerate(batch):
            if topic == TOPICS.predictions.name:
                with contextlib.suppress(InvalidEvent):  # counted as invalid below
                    predictions[i] = decode(value, Prediction)
        self._decided_before(predictions.values())
        now = time.monotonic()
        decisions: list[GateDecision] = []
        release = []
        for i, (topic, value, token) in enumerate(batch):
            waits_on: list[str] = []
            try:
                if topic == TOPICS.frames.name:
                    frame = decode(value, Frame)  # evidence only: acknowledged at once
                    self.frames[frame.frame_id] = value
                    while len(self.frames) > KEEP_FRAMES:
                        self.frames.popitem(last=False)
                elif topic == TOPICS.predictions.name and i not in predictions:
                    self.invalid += 1  # undecodable: see the handler below
                elif topic == TOPICS.predictions.name:
                    prediction = predictions[i]
                    waits_on = [prediction.frame_id]
                    decisions += self.gate.add_prediction(prediction, now)
                elif topic == TOPICS.signals.name:
                    signals = signals_in(decode(value))
                    waits_on = [signal.frame_id for signal in signals]
                    for signal in signals:
                        decisions += self.gate.add_signal(signal, now)
            except InvalidEvent:
                # A bad frame is the detector's to dead-letter; predictions and signals
                # are ours and never invalid, but a stranger may write to the topic.
                self.invalid += 1
            if waits_on:
                self.held.hold(token, *waits_on)
            else:
                release.append(token)
        return self.settle(decisions + self.gate.expire(now), release)

    def _decided_before(self, predictions: Iterable[Prediction]) -> None:
        """Tell the gate which of these predictions' frame records a predecessor decided
        already (the ledger, :mod:`streams.decided`); without Redis, decide them (at least
        once)."""
        if self.ledger is None:
            return
        records = [(p.delivery, p.frame_id) for p in predictions if p.delivery]
        if not records:
            return
        try:
            found = self.ledger.decided(records)
        except (redis.RedisError, ValueError) as exc:
            self.ledger_errors += 1
            log.warning("gate: could not read which frames were decided (%s); deciding them", exc)
            return
        for delivery, frame_id in found:
            self.gate.decided_elsewhere(frame_id, delivery)

    def expire(self) -> GateStep:
        return self.settle(self.gate.expire(time.monotonic()))

    def forget_all(self) -> int:
        """Forget, undecided and unacknowledged, every frame held (on a rebalance: faust
        reads their records again from the committed offsets).  Returns the records."""
        count = len(self.held)
        for frame_id in self.held.drop(lambda _token: True):
            self.gate.forget(frame_id)
        self.gate.rewind()
        return count

    def pending(self) -> int:
        """Predictions waiting for their signals."""
        return len(self.gate)

    def orphans(self) -> int:
        """Records held only as signals whose prediction has not come (on a drain, once the
        detector is done, it never will: the frame was dead-lettered)."""
        return self.held.count(self.held.frames(self.gate.waiting_for_prediction))

    def release_orphans(self) -> list[Any]:
        frame_ids = self.held.frames(self.gate.waiting_for_prediction)
        for frame_id in frame_ids:
            self.gate.forget(frame_id)
        return self.held.release(frame_ids)

    def settle(self, decisions: list[GateDecision], release: list[Any] | None = None) -> GateStep:
        """Kafka records for the decisions (quarantined ones stored in Redis first), and the
        input records that nothing in the gate waits on any more."""
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
                delivery=prediction.delivery,
            )
            held.append((record, prediction, frame))
            out.append((quarantine_topic, key, encode(record)))
        self.store.hold(held)
        done = (release or []) + self.held.settled(self.gate.waiting)
        decided = [(d.prediction.delivery, d.prediction.frame_id) for d in decisions]
        return GateStep(out, alerts, done, [item for item in decided if item[0]])

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
    """The worker's one gate.  Call it only in ``_pool``'s thread (see :func:`_in_gate`):
    ``cache`` is not a lock, and two first calls racing from two threads made two gates,
    one fed by the agent and one expired by the timer, so missing signals never expired."""
    store = QuarantineStore(redis_client(app_settings), app_settings.quarantine_retention_s)
    return GateRunner(app_settings, store, ledger())


@cache
def ledger() -> DecidedLedger:
    """The worker's record of frame records decided (:mod:`streams.decided`)."""
    return DecidedLedger(redis_client(app_settings), app_settings.app_id)


async def _in_gate(method: str) -> Any:
    """Call a method of the gate in the gate's own thread."""
    return await asyncio.get_running_loop().run_in_executor(
        _pool, lambda: getattr(runner(), method)()
    )


_ledger_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-ledger")
_recording: set[asyncio.Task] = set()  # ledger writes in progress (kept from the collector)


async def _finish(step: GateStep) -> None:
    """Send the step's records and alerts, then acknowledge what it released: at least once,
    never an acknowledgement before the outcome it stands for is sent.  Once the broker
    has the outcomes, their frame records go into the ledger, in the background."""
    sent = [await topic.send(key=key, value=value) for topic, key, value in step.records]
    for alert in step.alerts:
        await raise_alert(alert)
    acknowledge(step.release)
    if step.decided:
        task = asyncio.ensure_future(_record_when_sent(sent, step.decided))
        _recording.add(task)
        task.add_done_callback(_recording.discard)


async def _record_when_sent(sent: list[Any], decided: list[tuple[str, str]]) -> None:
    """Record ``decided`` in the ledger once every record in ``sent`` is on the broker."""
    try:
        await asyncio.gather(*sent)
    except Exception as exc:  # not on the broker: a successor must decide them again
        log.warning("gate: %d outcomes not confirmed (%s); not recorded as decided", len(sent), exc)
        return
    try:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_ledger_pool, ledger().record, decided)
    except redis.RedisError as exc:
        log.warning("gate: could not record %d decided frames (%s)", len(decided), exc)


async def gate_predictions(stream: faust.StreamT) -> None:
    loop = asyncio.get_running_loop()
    gate = await loop.run_in_executor(_pool, runner)
    async for events in stream.take_events(
        app_settings.worker_batch_size, within=app_settings.worker_batch_wait_s
    ):
        keep_unacknowledged(events)  # until the gate releases them
        batch = [(e.message.topic, e.message.value or b"", e) for e in events]
        await _finish(await loop.run_in_executor(_pool, gate.absorb, batch))


async def expire_deadlines() -> None:
    """Decide the predictions whose signals did not all come in time."""
    await _finish(await _in_gate("expire"))


async def forget_on_rebalance(sender: faust.App, revoked: set[Any], **_: Any) -> None:
    """Before a rebalance: forget what the gate holds (what it decided was committed
    just before, by :class:`streams.app.App`).

    faust then seeks every partition it is given back to its committed
    offset, so the held records come again (here or to another worker)."""
    forgotten = await _in_gate("forget_all")
    if forgotten:
        log.info("rebalance: %d held records left to be read again", forgotten)


class GateHold:
    """What the gate holds outside faust's acknowledgements, for :mod:`streams.drain`.

    Read in the gate's own thread, like every other use of its state."""

    async def pending(self) -> int:
        """Predictions waiting for signals."""
        return await _in_gate("pending")

    async def orphans(self) -> int:
        """Records held only for predictions that may never come."""
        return await _in_gate("orphans")

    async def release_orphans(self) -> None:
        """Acknowledge the orphans (once the detector is done: their frames were
        dead-lettered, so no prediction will come)."""
        acknowledge(await _in_gate("release_orphans"))


if app_settings.gate:
    gate_predictions = app.agent(gate_input_topic, concurrency=1)(gate_predictions)
    expire_deadlines = app.timer(interval=max(0.05, app_settings.gate_deadline_s / 10))(
        expire_deadlines
    )
    app.on_partitions_revoked.connect(forget_on_rebalance)
