"""The gate: a prediction reaches consumers only when every required monitor has passed its frame.

Pure logic, no Kafka (the agent is :mod:`streams.agents.gate`).  For each
prediction the gate waits for one signal from every *required* monitor,
then decides:

* **trusted** when no signal from a *quarantining* monitor alarms;
* **quarantined** otherwise, with the alarming monitors as reasons.

Which alarms quarantine is policy, not the monitor's business: by default
integrity and adversarial-input alarms hold the frame back, while drift and
model-health alarms are about the stream or the model, not the frame, so
they raise alerts and feed the rollback policy instead of quarantining every
frame of a foggy morning.  A monitor that crashed (reason ``monitor_error``)
always quarantines: a broken check must not pass frames.

Signals missing when the deadline passes follow the fail mode: fail-closed
(the default) quarantines with reason ``missing/<monitor>``; fail-open
trusts the prediction and reports the missing monitors.  Signals may arrive
before their prediction (frame monitors are quick), so they wait too, for as
long as the detector takes (:mod:`streams.early_signals`); the signals of a
frame the detector dead-lettered go once it has predicted a later record.  A
frame id delivered twice (a replayed frame) is two deliveries: each
prediction takes the oldest matching signals.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from streams.early_signals import SIGNAL_TTL_S, EarlySignals
from streams.events import Prediction, Signal

__all__ = ["Gate", "GateDecision", "GatePolicy", "GateStats"]

MISSING = "missing/"
MONITOR_ERROR = "monitor_error"


@dataclass(frozen=True)
class GatePolicy:
    """What the gate waits for and what it holds back.

    ``kinds`` maps each required monitor's name to its kind (``integrity``,
    ``adversarial``, ``drift``, ``health`` or a plug-in's own);
    ``quarantine_on`` lists kinds or names whose alarms quarantine;
    ``waivable`` lists kinds whose alarms a reviewer's release waives (a
    released frame is a re-sent frame, so integrity calls it a replay).
    """

    kinds: Mapping[str, str]
    quarantine_on: frozenset[str] = frozenset({"integrity", "adversarial"})
    deadline_s: float = 5.0
    fail_open: bool = False
    waivable: frozenset[str] = frozenset({"integrity"})

    def __post_init__(self) -> None:
        if self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive, got {self.deadline_s}")

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(sorted(self.kinds))

    def quarantines(self, signal: Signal) -> bool:
        """Does this signal hold its frame back?"""
        if not signal.alarm:
            return False
        if signal.reason.startswith(MONITOR_ERROR):
            return True
        return signal.monitor in self.quarantine_on or self.kinds.get(signal.monitor, "") in (
            self.quarantine_on
        )


@dataclass(frozen=True)
class GateDecision:
    """The terminal outcome of one delivered prediction."""

    outcome: Literal["trusted", "quarantined"]
    prediction: Prediction
    signals: Mapping[str, Signal]
    reasons: tuple[str, ...]
    missing: tuple[str, ...] = ()
    waived: tuple[str, ...] = ()
    waited_s: float = 0.0

    @property
    def scores(self) -> dict[str, float]:
        return {name: signal.score for name, signal in self.signals.items()}


@dataclass
class GateStats:
    """Counters for logs and the benchmark; nothing here changes a decision."""

    trusted: int = 0
    quarantined: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    expired_signals: int = 0  # early signals never claimed: frame dead-lettered, or too old
    late_signals: int = 0
    ignored_signals: int = 0
    duplicates: int = 0


@dataclass
class _Pending:
    prediction: Prediction
    arrived: float
    signals: dict[str, Signal] = field(default_factory=dict)


class Gate:
    """Joins predictions with their required signals and decides each one exactly once.

    Call :meth:`add_prediction` and :meth:`add_signal` as records arrive and
    :meth:`expire` now and then (the agent does every tenth of the deadline);
    each returns the decisions that became final.  ``released`` says whether
    a reviewer released a frame id (its waivable alarms are then ignored).

    A frame record is decided once, however often it is read: after a rebalance or a
    crash, records read but not committed are read again, and a frame the detector
    had in flight is predicted again.  A prediction from a frame record
    (``Prediction.delivery``) that waits here or was decided lately is dropped
    (``stats.duplicates``).  A replay is a new record of the same frame id, and is
    decided on its own.  Memory is bounded: at most ``capacity`` predictions and ``capacity``
    early signals wait; beyond that the oldest is decided (or dropped) early.  An early
    signal waits at most ``signal_ttl_s``.
    """

    def __init__(
        self,
        policy: GatePolicy,
        *,
        released: Callable[[str], bool] | None = None,
        signal_ttl_s: float = SIGNAL_TTL_S,
        capacity: int = 100_000,
    ) -> None:
        self.policy = policy
        self.released = released or (lambda _frame_id: False)
        self.signal_ttl_s = signal_ttl_s
        self.capacity = capacity
        self._stats = GateStats()
        self._pending: OrderedDict[str, deque[_Pending]] = OrderedDict()
        self._pending_count = 0
        self._early = EarlySignals(signal_ttl_s, capacity)  # signals before their prediction
        # Frame ids decided without some signals, and which: those signals are late, not early.
        self._decided: OrderedDict[str, set[str]] = OrderedDict()
        # Deliveries (frame id, frame record) decided lately: the same record read again.
        self._delivered: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __len__(self) -> int:
        return self._pending_count

    @property
    def stats(self) -> GateStats:
        """The counters so far (the early signals' store counts what it dropped)."""
        self._stats.expired_signals = self._early.dropped
        return self._stats

    def waiting(self, frame_id: str) -> bool:
        """Does anything of this frame id wait here: a prediction, or signals before it?"""
        return frame_id in self._pending or frame_id in self._early

    def waiting_for_prediction(self, frame_id: str) -> bool:
        """Are only signals of this frame id waiting here, for a prediction not yet seen?"""
        return frame_id in self._early and frame_id not in self._pending

    def forget(self, frame_id: str) -> None:
        """Drop, undecided, everything waiting for this frame id.

        For frames whose partition went to another worker: that worker reads
        their records again and decides them (:mod:`streams.held`).
        """
        queue = self._pending.pop(frame_id, None)
        if queue:
            self._pending_count -= len(queue)
        self._early.forget(frame_id)

    def rewind(self) -> None:
        """Every partition will be read again from its committed offset (a rebalance)."""
        self._early.rewind()

    def decided_elsewhere(self, frame_id: str, delivery: str) -> None:
        """This frame record was decided before this gate saw it (a worker that died before
        its offsets were committed: :mod:`streams.decided`); its prediction is a duplicate."""
        self._remember(frame_id, delivery)

    def add_prediction(self, prediction: Prediction, now: float) -> list[GateDecision]:
        if self._seen(prediction):
            self._stats.duplicates += 1  # read again, or predicted again: decided once
            if prediction.delivery:  # its signals, made again too, will not be claimed
                self._early.discard(prediction.frame_id, prediction.delivery)
                self._early.passed(prediction.delivery)
            return []
        pending = _Pending(prediction, now)
        for monitor in self.policy.required:
            signal = self._early.take(prediction.frame_id, monitor)
            if signal is not None:
                pending.signals[monitor] = signal
        self._early.passed(prediction.delivery)  # the frames before it are done
        if len(pending.signals) == len(self.policy.required):
            return [self._decide(pending, now)]
        self._pending.setdefault(prediction.frame_id, deque()).append(pending)
        self._pending_count += 1
        out = []
        while self._pending_count > self.capacity:
            out.append(self._decide(self._pop_oldest(), now))
        return out

    def _seen(self, prediction: Prediction) -> bool:
        """Is this frame record's prediction waiting here, or decided lately?"""
        delivery = prediction.delivery
        if not delivery:  # not read from Kafka (offline, tests): nothing to repeat
            return False
        if (prediction.frame_id, delivery) in self._delivered:
            return True
        return any(
            p.prediction.delivery == delivery for p in self._pending.get(prediction.frame_id, ())
        )

    def add_signal(self, signal: Signal, now: float) -> list[GateDecision]:
        if signal.monitor not in self.policy.kinds:
            self._stats.ignored_signals += 1
            return []
        for pending in self._pending.get(signal.frame_id, ()):
            if signal.monitor not in pending.signals:
                pending.signals[signal.monitor] = signal
                if len(pending.signals) < len(self.policy.required):
                    return []
                self._remove(signal.frame_id, pending)
                return [self._decide(pending, now)]
        missed = self._decided.get(signal.frame_id)
        if missed and signal.monitor in missed:
            missed.discard(signal.monitor)  # its prediction was decided at the deadline
            self._stats.late_signals += 1
            return []
        self._early.add(signal, now)
        return []

    def expire(self, now: float) -> list[GateDecision]:
        """Decide the predictions whose deadline passed; drop signals nobody claimed."""
        out = []
        while self._pending:
            oldest = next(iter(self._pending.values()))[0]
            if now - oldest.arrived < self.policy.deadline_s:
                break
            out.append(self._decide(self._pop_oldest(), now))
        self._early.expire(now)
        return out

    def drain(self, now: float) -> list[GateDecision]:
        """Decide everything still waiting (on shutdown), as if its deadline had passed."""
        out = []
        while self._pending:
            out.append(self._decide(self._pop_oldest(), now))
        return out

    # -- internals -------------------------------------------------------------------

    def _decide(self, pending: _Pending, now: float) -> GateDecision:
        prediction = pending.prediction
        missing = tuple(m for m in self.policy.required if m not in pending.signals)
        alarms = [s for s in pending.signals.values() if self.policy.quarantines(s)]
        waived: tuple[str, ...] = ()
        waivable = [
            s
            for s in alarms
            if self.policy.kinds.get(s.monitor) in self.policy.waivable
            and not s.reason.startswith(MONITOR_ERROR)
        ]
        if waivable and self.released(prediction.frame_id):
            waived = tuple(s.monitor for s in waivable)
            alarms = [s for s in alarms if s.monitor not in waived]
        reasons = [s.monitor for s in alarms]
        for monitor in missing:
            self._stats.missing[monitor] = self._stats.missing.get(monitor, 0) + 1
            if not self.policy.fail_open:
                reasons.append(MISSING + monitor)
        outcome: Literal["trusted", "quarantined"] = "quarantined" if reasons else "trusted"
        if outcome == "trusted":
            self._stats.trusted += 1
        else:
            self._stats.quarantined += 1
        if missing:
            self._decided[prediction.frame_id] = set(missing)
        if prediction.delivery:
            self._remember(prediction.frame_id, prediction.delivery)
        while len(self._decided) > self.capacity:
            self._decided.popitem(last=False)
        return GateDecision(
            outcome,
            prediction,
            dict(pending.signals),
            tuple(reasons),
            missing,
            waived,
            max(0.0, now - pending.arrived),
        )

    def _remember(self, frame_id: str, delivery: str) -> None:
        self._delivered[(frame_id, delivery)] = None
        while len(self._delivered) > self.capacity:
            self._delivered.popitem(last=False)

    def _pop_oldest(self) -> _Pending:
        frame_id, queue = next(iter(self._pending.items()))
        pending = queue[0]
        self._remove(frame_id, pending)
        return pending

    def _remove(self, frame_id: str, pending: _Pending) -> None:
        queue = self._pending[frame_id]
        queue.remove(pending)
        if not queue:
            del self._pending[frame_id]
        else:  # a replayed frame id's next delivery: keep the keys roughly in arrival order
            self._pending.move_to_end(frame_id)
        self._pending_count -= 1


def policy_kinds(classes: Iterable[type]) -> dict[str, str]:
    """``{name: kind}`` for monitor classes (see :func:`detectors.monitors.registry.select`)."""
    return {cls.name: cls.kind for cls in classes}  # type: ignore[attr-defined]
