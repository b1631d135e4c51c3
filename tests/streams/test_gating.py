"""The gate: one decision per prediction, trusted only when every required monitor passed it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import Prediction, Signal, Timing
from streams.gating import Gate, GatePolicy

KINDS = {
    "integrity": "integrity",
    "adversarial.energy": "adversarial",
    "drift.image": "drift",
}


def prediction(n: int, version: str = "1", delivery: str = "") -> Prediction:
    return Prediction(
        frame_id=f"{n:032x}",
        camera_id="cam",
        seq=n,
        capture_ts_ns=n,
        model="pedestrian",
        model_version=version,
        boxes=[],
        timing=Timing(),
        processed_ts_ns=n,
        delivery=delivery,
    )


def signal(
    n: int, monitor: str, alarm: bool = False, reason: str = "", delivery: str = ""
) -> Signal:
    return Signal(
        frame_id=f"{n:032x}",
        camera_id="cam",
        seq=n,
        monitor=monitor,
        score=1.0 if alarm else 0.0,
        threshold=0.5,
        alarm=alarm,
        ts_ns=n,
        reason=reason,
        delivery=delivery,
    )


def passing(n: int, delivery: str = "") -> list[Signal]:
    return [signal(n, m, delivery=delivery) for m in KINDS]


@pytest.fixture
def gate() -> Gate:
    return Gate(GatePolicy(KINDS, deadline_s=1.0))


def test_a_prediction_is_trusted_once_every_required_monitor_passed_it(gate):
    assert gate.add_prediction(prediction(1), now=0.0) == []
    assert gate.add_signal(signal(1, "integrity"), now=0.1) == []
    assert gate.add_signal(signal(1, "drift.image"), now=0.1) == []
    [decision] = gate.add_signal(signal(1, "adversarial.energy"), now=0.2)
    assert decision.outcome == "trusted"
    assert decision.reasons == () and decision.missing == ()
    assert decision.waited_s == pytest.approx(0.2)
    assert len(gate) == 0


def test_signals_may_come_before_their_prediction(gate):
    for s in passing(7):
        assert gate.add_signal(s, now=0.0) == []
    [decision] = gate.add_prediction(prediction(7), now=0.5)
    assert decision.outcome == "trusted"
    assert decision.waited_s == 0.0


def test_an_adversarial_or_integrity_alarm_quarantines_with_the_monitor_as_reason(gate):
    gate.add_prediction(prediction(1), now=0)
    gate.add_signal(signal(1, "integrity", alarm=True, reason="replay"), now=0)
    gate.add_signal(signal(1, "drift.image"), now=0)
    [decision] = gate.add_signal(signal(1, "adversarial.energy", alarm=True), now=0)
    assert decision.outcome == "quarantined"
    assert decision.reasons == ("integrity", "adversarial.energy")
    assert decision.scores["adversarial.energy"] == 1.0


def test_a_drift_alarm_alone_does_not_quarantine_the_frame(gate):
    gate.add_prediction(prediction(1), now=0)
    gate.add_signal(signal(1, "integrity"), now=0)
    gate.add_signal(signal(1, "adversarial.energy"), now=0)
    [decision] = gate.add_signal(signal(1, "drift.image", alarm=True), now=0)
    assert decision.outcome == "trusted"


def test_a_monitor_that_crashed_quarantines_whatever_its_kind(gate):
    gate.add_prediction(prediction(1), now=0)
    gate.add_signal(signal(1, "integrity"), now=0)
    gate.add_signal(signal(1, "adversarial.energy"), now=0)
    crashed = signal(1, "drift.image", alarm=True, reason="monitor_error: ValueError: x")
    [decision] = gate.add_signal(crashed, now=0)
    assert decision.outcome == "quarantined"
    assert decision.reasons == ("drift.image",)


def test_missing_signals_fail_closed_at_the_deadline(gate):
    gate.add_prediction(prediction(1), now=0.0)
    gate.add_signal(signal(1, "integrity"), now=0.1)
    assert gate.expire(now=0.99) == []
    [decision] = gate.expire(now=1.0)
    assert decision.outcome == "quarantined"
    assert decision.reasons == ("missing/adversarial.energy", "missing/drift.image")
    assert decision.missing == ("adversarial.energy", "drift.image")
    assert gate.stats.missing == {"adversarial.energy": 1, "drift.image": 1}


def test_fail_open_trusts_at_the_deadline_but_reports_what_was_missing():
    gate = Gate(GatePolicy(KINDS, deadline_s=1.0, fail_open=True))
    gate.add_prediction(prediction(1), now=0.0)
    [decision] = gate.expire(now=2.0)
    assert decision.outcome == "trusted"
    assert decision.missing == tuple(sorted(KINDS))


def test_fail_open_still_quarantines_on_an_alarm_that_did_arrive():
    gate = Gate(GatePolicy(KINDS, deadline_s=1.0, fail_open=True))
    gate.add_prediction(prediction(1), now=0.0)
    gate.add_signal(signal(1, "adversarial.energy", alarm=True), now=0.0)
    [decision] = gate.expire(now=2.0)
    assert decision.outcome == "quarantined"
    assert decision.reasons == ("adversarial.energy",)


def test_a_signal_after_the_deadline_is_late_and_decides_nothing(gate):
    gate.add_prediction(prediction(1), now=0.0)
    [_] = gate.expire(now=1.5)
    assert gate.add_signal(signal(1, "integrity"), now=1.6) == []
    assert gate.stats.late_signals == 1
    assert gate.expire(now=100.0) == []


def test_a_replayed_frame_id_is_two_deliveries_each_with_its_own_signals(gate):
    gate.add_prediction(prediction(1), now=0.0)
    gate.add_prediction(prediction(1), now=0.1)
    replay = [signal(1, "integrity", alarm=True, reason="replay")]
    replay += [signal(1, "adversarial.energy"), signal(1, "drift.image")]
    decisions = []
    for s in passing(1) + replay:
        decisions += gate.add_signal(s, now=0.2)
    first, second = decisions
    assert (first.outcome, second.outcome) == ("trusted", "quarantined")
    assert second.reasons == ("integrity",)


def test_a_reviewer_release_waives_integrity_alarms_but_not_adversarial_ones():
    gate = Gate(GatePolicy(KINDS, deadline_s=1.0), released=lambda frame_id: True)
    gate.add_prediction(prediction(1), now=0)
    gate.add_signal(signal(1, "integrity", alarm=True, reason="replay"), now=0)
    gate.add_signal(signal(1, "drift.image"), now=0)
    [decision] = gate.add_signal(signal(1, "adversarial.energy"), now=0)
    assert decision.outcome == "trusted" and decision.waived == ("integrity",)

    gate.add_prediction(prediction(2), now=0)
    gate.add_signal(signal(2, "integrity", alarm=True, reason="replay"), now=0)
    gate.add_signal(signal(2, "drift.image"), now=0)
    [decision] = gate.add_signal(signal(2, "adversarial.energy", alarm=True), now=0)
    assert decision.outcome == "quarantined" and decision.reasons == ("adversarial.energy",)


def test_signals_of_frames_never_predicted_expire(gate):
    gate.add_signal(signal(9, "integrity", alarm=True, reason="unsigned"), now=0.0)
    assert gate.expire(now=gate.signal_ttl_s + 1) == []
    assert gate.stats.expired_signals == 1
    # a prediction for that frame id much later waits for fresh signals
    gate.add_prediction(prediction(9), now=100.0)
    assert len(gate) == 1


def test_signals_wait_for_their_prediction_however_far_behind_the_detector_is():
    """A fast replay (or a replayer computing PGD on the same cores) can put the detector
    a minute behind the frame monitors: their signals still vouch for each frame."""
    gate = Gate(GatePolicy(KINDS, deadline_s=5.0))
    for n in range(10):
        for s in passing(n, delivery=f"0:{n}"):
            gate.add_signal(s, now=0.0)
    decisions = []
    for n in range(10):
        now = 60.0 + 10 * n
        decisions += gate.expire(now)
        decisions += gate.add_prediction(prediction(n, delivery=f"0:{n}"), now)
    assert [d.outcome for d in decisions] == ["trusted"] * 10
    assert gate.stats.expired_signals == 0


def test_signals_of_a_frame_never_predicted_go_once_a_later_frame_is(gate):
    """The detector predicts a partition in order, so a prediction of record 0:5 means the
    frame of record 0:4 was dead-lettered (a forged frame): its signals wait no more."""
    for s in passing(4, delivery="0:4") + passing(5, delivery="0:5"):
        gate.add_signal(s, now=0.0)
    gate.add_signal(signal(6, "integrity", delivery="1:2"), now=0.0)  # another partition
    [decision] = gate.add_prediction(prediction(5, delivery="0:5"), now=0.1)
    assert decision.outcome == "trusted"
    assert not gate.waiting(f"{4:032x}") and gate.stats.expired_signals == len(KINDS)
    assert gate.waiting_for_prediction(f"{6:032x}"), "partition 1 is not passed"
    gate.add_signal(signal(4, "integrity", delivery="0:4"), now=0.2)  # a straggler
    assert not gate.waiting(f"{4:032x}") and gate.stats.expired_signals == len(KINDS) + 1


def test_after_a_rewind_records_read_again_wait_for_their_prediction_again(gate):
    gate.add_prediction(prediction(9, delivery="0:9"), now=0.0)
    gate.forget(f"{9:032x}")
    gate.rewind()  # a rebalance: the partition is read again from its committed offset
    for s in passing(3, delivery="0:3"):
        gate.add_signal(s, now=1.0)
    [decision] = gate.add_prediction(prediction(3, delivery="0:3"), now=1.1)
    assert decision.outcome == "trusted"


def test_signals_of_monitors_the_gate_does_not_require_are_ignored(gate):
    assert gate.add_signal(signal(1, "night"), now=0) == []
    assert gate.stats.ignored_signals == 1


def test_memory_is_bounded_the_oldest_is_decided_early():
    gate = Gate(GatePolicy(KINDS, deadline_s=10.0), capacity=3)
    decided = []
    for n in range(5):
        decided += gate.add_prediction(prediction(n), now=float(n))
    assert [d.prediction.seq for d in decided] == [0, 1]
    assert all(d.outcome == "quarantined" for d in decided)  # fail-closed: nothing vouched
    assert len(gate) == 3


def test_a_policy_needs_a_positive_deadline():
    with pytest.raises(ValueError, match="deadline"):
        GatePolicy(KINDS, deadline_s=0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
    st.sampled_from([0.2, 1.0, 50.0]),
)
def test_every_frame_record_is_decided_exactly_once_in_any_arrival_order(frames, rnd, step):
    """A frame listed twice is one record read twice (its prediction and signals come
    again, as after a rebalance): still one decision."""
    gate = Gate(GatePolicy(KINDS, deadline_s=1.0))
    events = [("p", n) for n in frames] + [("s", n, m) for n in frames for m in KINDS]
    rnd.shuffle(events)
    decisions, now = [], 0.0
    for event in events:
        now += step * rnd.random()
        if event[0] == "p":
            decisions += gate.add_prediction(prediction(event[1], delivery=f"0:{event[1]}"), now)
        else:
            decisions += gate.add_signal(signal(event[1], event[2]), now)
        decisions += gate.expire(now)
    decisions += gate.drain(now)
    assert sorted(d.prediction.seq for d in decisions) == sorted(set(frames))
    assert gate.stats.duplicates == len(frames) - len(set(frames))
    assert len(gate) == 0
    if step == 0.2 and len(events) * step < 1.0:  # no deadline can have passed: all trusted
        assert all(d.outcome == "trusted" for d in decisions)


def test_the_gate_says_what_still_waits_and_forgets_it_on_request(gate):
    gate.add_signal(signal(1, "integrity"), now=0.0)  # before its prediction
    gate.add_prediction(prediction(2), now=0.0)
    assert gate.waiting(f"{1:032x}") and gate.waiting_for_prediction(f"{1:032x}")
    assert gate.waiting(f"{2:032x}") and not gate.waiting_for_prediction(f"{2:032x}")
    assert not gate.waiting(f"{3:032x}")

    gate.forget(f"{1:032x}")
    gate.forget(f"{2:032x}")
    assert not gate.waiting(f"{1:032x}") and not gate.waiting(f"{2:032x}")
    assert len(gate) == 0
    assert gate.expire(now=100.0) == [], "forgotten, not decided"
    # What was forgotten is read again later, and then decided as usual.
    gate.add_prediction(prediction(2), now=200.0)
    [decision] = [d for s in passing(2) for d in gate.add_signal(s, now=200.0)]
    assert decision.outcome == "trusted"


def test_a_frame_record_read_again_or_predicted_again_is_not_decided_again(gate):
    """After a rebalance the next owner reads uncommitted records again, and frames the
    detector had in flight are predicted again: each frame record gets one outcome."""
    gate.add_prediction(prediction(1, delivery="0:5"), now=0.0)
    again = prediction(1, version="2", delivery="0:5")
    assert gate.add_prediction(again, now=0.1) == [], "waits already"
    [decision] = [d for s in passing(1) for d in gate.add_signal(s, now=0.2)]
    assert decision.prediction.model_version == "1", "the first prediction is the one decided"
    assert gate.add_prediction(prediction(1, delivery="0:5"), now=0.3) == [], "decided already"
    assert gate.stats.duplicates == 2
    assert not gate.waiting(f"{1:032x}") and len(gate) == 0
    # A replay is another record of the same frame id: decided on its own.
    gate.add_prediction(prediction(1, delivery="0:9"), now=0.4)
    [replay] = [d for s in passing(1) for d in gate.add_signal(s, now=0.5)]
    assert replay.prediction.delivery == "0:9" and gate.stats.duplicates == 2


def test_a_frame_record_a_dead_worker_decided_is_not_decided_again(gate):
    """A worker killed before its offsets were committed: its successor reads the records
    again, and the ledger (streams.decided) says which ones already have an outcome."""
    gate.decided_elsewhere(f"{1:032x}", "0:5")
    for s in passing(1, delivery="0:5"):  # the successor's monitors scored it again, first
        gate.add_signal(s, now=0.0)
    assert gate.add_prediction(prediction(1, delivery="0:5"), now=0.1) == []
    assert gate.stats.duplicates == 1
    assert not gate.waiting(f"{1:032x}"), "its signals, made again, are dropped with it"
    # The same frame id in another record (a replay) is decided on its own.
    gate.add_prediction(prediction(1, delivery="0:9"), now=0.2)
    [replay] = [d for s in passing(1, delivery="0:9") for d in gate.add_signal(s, now=0.3)]
    assert replay.prediction.delivery == "0:9"
