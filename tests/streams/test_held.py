"""Held records: unacknowledged until nothing waits on their frame any more."""

from __future__ import annotations

import pytest

from streams.held import HeldRecords


def test_records_are_released_only_when_their_frame_no_longer_waits():
    held: HeldRecords[str] = HeldRecords()
    held.hold("a-prediction", "a")
    held.hold("a-signal", "a")
    held.hold("b-signal", "b")
    assert len(held) == 3

    waiting = {"a", "b"}
    assert held.settled(waiting.__contains__) == []
    waiting.discard("a")
    assert held.settled(waiting.__contains__) == ["a-prediction", "a-signal"]
    assert len(held) == 1
    assert held.settled(waiting.__contains__) == [], "released once, never twice"


def test_a_selection_of_frames_can_be_counted_and_released_whatever_waits():
    held: HeldRecords[str] = HeldRecords()
    for frame, token in [("a", "1"), ("a", "2"), ("b", "3"), ("c", "4")]:
        held.hold(token, frame)
    orphans = held.frames(lambda frame: frame in {"a", "c"})
    assert sorted(orphans) == ["a", "c"]
    assert held.count(orphans) == 3
    assert sorted(held.release(orphans)) == ["1", "2", "4"]
    assert len(held) == 1


def test_dropping_forgets_whole_frames_unreleased():
    held: HeldRecords[tuple[int, str]] = HeldRecords()
    held.hold((0, "a-prediction"), "a")
    held.hold((1, "a-signal"), "a")  # one record of frame a is on partition 1
    held.hold((0, "b-prediction"), "b")
    assert held.drop(lambda token: token[0] == 1) == ["a"]
    assert len(held) == 1
    assert held.settled(lambda _frame: False) == [(0, "b-prediction")]


def test_a_record_of_several_frames_is_released_once_none_of_them_waits():
    held: HeldRecords[str] = HeldRecords()
    held.hold("signals-a-b", "a", "b")  # one monitor's signals for frames a and b
    held.hold("a-prediction", "a")
    assert len(held) == 2

    waiting = {"a", "b"}
    waiting.discard("a")
    assert held.settled(waiting.__contains__) == ["a-prediction"]
    assert len(held) == 1, "the signals still wait on frame b"
    waiting.discard("b")
    assert held.settled(waiting.__contains__) == ["signals-a-b"]
    assert len(held) == 0
    assert held.settled(waiting.__contains__) == [], "released once, never twice"


def test_released_orphans_free_a_shared_record_only_with_its_last_frame():
    held: HeldRecords[str] = HeldRecords()
    held.hold("signals", "a", "b")
    assert held.count(["a", "b"]) == 1, "one record, counted once"
    assert held.release(["a"]) == []
    assert held.release(["b"]) == ["signals"]


def test_dropping_a_frame_forgets_every_frame_that_shares_a_record_with_it():
    held: HeldRecords[tuple[int, str]] = HeldRecords()
    held.hold((1, "signals-a-b"), "a", "b")
    held.hold((0, "b-prediction"), "b")
    held.hold((0, "c-prediction"), "c")
    assert held.drop(lambda token: token[1] == "signals-a-b") == ["a", "b"]
    assert len(held) == 1
    assert held.settled(lambda _frame: False) == [(0, "c-prediction")]


def test_a_record_must_wait_on_some_frame():
    with pytest.raises(ValueError, match="at least one frame"):
        HeldRecords().hold("token")
