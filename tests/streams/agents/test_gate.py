"""The gate agent's runner: a frame's records stay unacknowledged until the frame is decided.

Pure unit tests: the quarantine store is an in-memory stand-in, no Kafka or Redis.
"""

from __future__ import annotations

import pytest
import redis

from streams.agents.gate import GateRunner
from streams.events import Quarantine, Signals, decode, encode
from streams.gating import GatePolicy
from streams.settings import Settings
from streams.topics import TOPICS
from tests.streams.test_gating import prediction as make_prediction
from tests.streams.test_gating import signal as make_signal

MONITORS = ("integrity", "adversarial.energy")


class MemoryStore:
    def __init__(self) -> None:
        self.held: list[str] = []

    def hold(self, held) -> None:
        self.held += [record.frame_id for record, _prediction, _frame in held]

    def is_released(self, frame_id: str) -> bool:
        return False


def prediction(n: int) -> tuple[str, bytes, str]:
    return TOPICS.predictions.name, encode(make_prediction(n)), f"p{n}"


def signal(n: int, monitor: str) -> tuple[str, bytes, str]:
    return TOPICS.signals.name, encode(make_signal(n, monitor)), f"s{n}-{monitor}"


def signals(monitor: str, *ns: int) -> tuple[str, bytes, str]:
    """One monitor's signals for several frames in one record, as the monitor agents send."""
    record = Signals(signals=[make_signal(n, monitor) for n in ns])
    return TOPICS.signals.name, encode(record), f"s{','.join(map(str, ns))}-{monitor}"


@pytest.fixture
def runner() -> GateRunner:
    settings = Settings.from_env(
        {"SECMLOPS_MONITORS": ",".join(MONITORS), "SECMLOPS_GATE_DEADLINE": "1"}
    )
    return GateRunner(settings, MemoryStore())  # type: ignore[arg-type]


def test_a_frames_records_are_released_together_once_it_is_decided(runner):
    step = runner.absorb([prediction(1), signal(1, "integrity")])
    assert step.records == [] and step.release == [], "undecided: nothing acknowledged"
    assert len(runner.held) == 2

    step = runner.absorb([signal(1, "adversarial.energy")])
    [(topic, _key, _value)] = step.records
    assert topic.get_topic_name() == TOPICS.trusted.name
    assert sorted(step.release) == ["p1", "s1-adversarial.energy", "s1-integrity"]
    assert len(runner.held) == 0


def test_a_record_of_several_frames_signals_is_released_with_the_last_of_them(runner):
    runner.absorb([signals("integrity", 1, 2), signals("adversarial.energy", 1, 2)])
    step = runner.absorb([prediction(1)])
    assert len(step.records) == 1, "frame 1 decided"
    assert step.release == ["p1"], "the signals records still wait on frame 2"
    step = runner.absorb([prediction(2)])
    assert len(step.records) == 1
    assert sorted(step.release) == ["p2", "s1,2-adversarial.energy", "s1,2-integrity"]
    assert len(runner.held) == 0


def test_records_the_gate_does_not_keep_are_released_at_once(runner):
    junk = (TOPICS.signals.name, b"not an event", "junk")
    frame = (TOPICS.frames.name, b"also not an event", "frame")
    stranger = (TOPICS.predictions.name, b"not a prediction", "stranger")
    step = runner.absorb([junk, frame, stranger])
    assert sorted(step.release) == ["frame", "junk", "stranger"]
    assert runner.invalid == 3


def test_a_prediction_decided_at_its_deadline_releases_its_records(runner):
    runner.absorb([prediction(1), signal(1, "integrity")])
    runner.gate.policy = GatePolicy(runner.policy.kinds, deadline_s=1e-9)  # deadline: now
    step = runner.expire()
    assert [t.get_topic_name() for t, _k, _v in step.records] == [TOPICS.quarantine.name]
    assert sorted(step.release) == ["p1", "s1-integrity"]


def test_signals_without_a_prediction_are_orphans_until_released(runner):
    runner.absorb([signal(1, "integrity"), signal(1, "adversarial.energy"), prediction(2)])
    assert runner.orphans() == 2, "frame 1's signals; frame 2's prediction is no orphan"
    assert sorted(runner.release_orphans()) == ["s1-adversarial.energy", "s1-integrity"]
    assert runner.orphans() == 0
    assert len(runner.held) == 1


def test_a_rebalance_forgets_everything_held_undecided(runner):
    runner.absorb([prediction(1), signal(2, "integrity")])
    assert runner.forget_all() == 2
    assert len(runner.held) == 0 and len(runner.gate) == 0
    runner.gate.policy = GatePolicy(runner.policy.kinds, deadline_s=1e-9)
    assert runner.expire().records == [], "forgotten frames get no outcome here"


def test_a_quarantine_names_the_frame_record_it_decides(runner):
    # A replayed frame id has two records; a reader must tell which one was held.
    held = encode(make_prediction(2, delivery="0:17"))
    step = runner.absorb(
        [
            (TOPICS.predictions.name, held, "p2"),
            (TOPICS.signals.name, encode(make_signal(2, "integrity", alarm=True)), "s2-i"),
            signal(2, "adversarial.energy"),
        ]
    )
    [(topic, _key, value)] = step.records
    assert topic.get_topic_name() == TOPICS.quarantine.name
    record = decode(value, Quarantine)
    assert record.delivery == "0:17" and record.reasons == ["integrity"]


class MemoryLedger:
    """Stands in for streams.decided.DecidedLedger (tested against Redis in integration)."""

    def __init__(self, decided=(), fails: bool = False) -> None:
        self.recorded = set(decided)
        self.fails = fails

    def decided(self, items):
        if self.fails:
            raise redis.ConnectionError("Redis is down")
        return {item for item in items if item in self.recorded}


def with_delivery(n: int, delivery: str) -> tuple[str, bytes, str]:
    return TOPICS.predictions.name, encode(make_prediction(n, delivery=delivery)), f"p{n}"


def test_a_step_names_the_frame_records_it_decided_for_the_ledger(runner):
    step = runner.absorb(
        [with_delivery(1, "0:3"), signal(1, "integrity"), signal(1, "adversarial.energy")]
    )
    assert len(step.records) == 1
    assert step.decided == [("0:3", f"{1:032x}")]


def scored(n: int, monitor: str, delivery: str) -> tuple[str, bytes, str]:
    """A monitor's signal naming the frame record it scored, as the monitor agents send."""
    value = encode(make_signal(n, monitor, delivery=delivery))
    return TOPICS.signals.name, value, f"s{n}-{monitor}"


def test_a_prediction_of_a_record_the_ledger_holds_gets_no_second_outcome(runner):
    runner.ledger = MemoryLedger({("0:3", f"{1:032x}")})
    step = runner.absorb(
        [
            scored(1, "integrity", "0:3"),  # scored again by the successor's monitors
            with_delivery(1, "0:3"),
            scored(1, "adversarial.energy", "0:3"),
        ]
    )
    assert step.records == [] and step.decided == []
    assert sorted(step.release) == ["p1", "s1-adversarial.energy", "s1-integrity"]
    assert runner.gate.stats.duplicates == 1


def test_without_redis_the_gate_decides_rather_than_drop_a_frame(runner):
    runner.ledger = MemoryLedger({("0:3", f"{1:032x}")}, fails=True)
    step = runner.absorb(
        [with_delivery(1, "0:3"), signal(1, "integrity"), signal(1, "adversarial.energy")]
    )
    assert len(step.records) == 1, "at least once: a duplicate rather than a loss"
    assert runner.ledger_errors == 1
