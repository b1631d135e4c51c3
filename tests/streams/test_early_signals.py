"""The signals that came before their prediction: how long they wait, and for what."""

from __future__ import annotations

import pytest

from streams.early_signals import EarlySignals, record_of
from tests.streams.test_gating import signal as a_signal


def signal(frame: int, delivery: str = ""):
    return a_signal(frame, "integrity", delivery=delivery)


@pytest.mark.parametrize(
    ("delivery", "record"),
    [("3:17", (3, 17)), ("0:0", (0, 0)), ("", None), ("7", None), ("a:1", None)],
)
def test_a_delivery_names_a_record_of_pds_frames_or_none(delivery, record):
    assert record_of(delivery) == record


def test_each_signal_is_taken_once_oldest_first():
    early = EarlySignals()
    first, second = signal(1, delivery="0:1"), signal(1, delivery="0:8")  # a replayed frame id
    early.add(first, now=0.0)
    early.add(second, now=1.0)
    assert early.take(f"{1:032x}", "integrity") is first
    assert early.take(f"{1:032x}", "integrity") is second
    assert early.take(f"{1:032x}", "integrity") is None
    assert len(early) == 0 and f"{1:032x}" not in early and early.dropped == 0


def test_only_waiting_signals_count_against_the_capacity():
    early = EarlySignals(capacity=2)
    for n in range(100):  # each taken by its prediction: none is waiting
        early.add(signal(n), now=float(n))
        assert early.take(f"{n:032x}", "integrity") is not None
    early.add(signal(100), now=100.0)
    early.add(signal(101), now=101.0)
    assert early.dropped == 0
    early.add(signal(102), now=102.0)
    assert early.dropped == 1 and f"{100:032x}" not in early, "the oldest waiting one goes"


def test_a_signal_waits_at_most_the_ttl():
    early = EarlySignals(ttl_s=10.0)
    early.add(signal(1, delivery="0:1"), now=0.0)
    early.expire(now=9.9)
    assert f"{1:032x}" in early
    early.expire(now=10.0)
    assert f"{1:032x}" not in early and early.dropped == 1


def test_a_prediction_passes_the_records_before_it_on_its_partition_only():
    early = EarlySignals()
    for n in range(5):
        early.add(signal(n, delivery=f"0:{n}"), now=0.0)
    early.add(signal(9, delivery="1:0"), now=0.0)
    early.passed("0:3")
    assert [n for n in range(5) if f"{n:032x}" in early] == [3, 4]
    assert f"{9:032x}" in early and early.dropped == 3
    early.passed("0:1")  # older than what was passed: nothing changes
    early.passed("")  # not from Kafka: nothing to learn
    assert early.dropped == 3


def test_forgetting_is_not_dropping_and_a_rewind_forgets_what_was_passed():
    early = EarlySignals()
    early.add(signal(1, delivery="0:1"), now=0.0)
    early.forget(f"{1:032x}")
    assert len(early) == 0 and early.dropped == 0
    early.passed("0:5")
    early.add(signal(2, delivery="0:2"), now=0.0)
    assert f"{2:032x}" not in early and early.dropped == 1
    early.rewind()
    early.add(signal(2, delivery="0:2"), now=0.0)
    assert f"{2:032x}" in early


def test_signals_taken_long_ago_do_not_pile_up_behind_a_quiet_partition():
    early = EarlySignals()
    for n in range(5000):  # predictions come, but (say) without a delivery
        early.add(signal(n, delivery=f"0:{n}"), now=0.0)
        early.take(f"{n:032x}", "integrity")
    early.expire(now=1.0)
    assert early._heaped == 0, "rebuilt from what still waits"
    early.add(signal(7, delivery="0:7"), now=1.0)
    early.passed("0:8")
    assert len(early) == 0 and early.dropped == 1


def test_discarding_a_record_drops_its_signals_and_keeps_a_replays():
    early = EarlySignals()
    early.add(signal(1, delivery="0:1"), now=0.0)
    replay = signal(1, delivery="0:8")  # the same frame id in a later record
    early.add(replay, now=1.0)
    early.discard(f"{1:032x}", "0:1")
    assert early.dropped == 1 and len(early) == 1
    assert early.take(f"{1:032x}", "integrity") is replay
