"""Held records: unacknowledged until nothing waits on their frame any more."""

from __future__ import annotations

from streams.held import HeldRecords


def test_records_are_released_only_when_their_frame_no_longer_waits():
    held: HeldRecords[str] = HeldRecords()
    held.hold("a", "a-prediction")
    held.hold("a", "a-signal")
    held.hold("b", "b-signal")
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
        held.hold(frame, token)
    orphans = held.frames(lambda frame: frame in {"a", "c"})
    assert sorted(orphans) == ["a", "c"]
    assert held.count(orphans) == 3
    assert sorted(held.release(orphans)) == ["1", "2", "4"]
    assert len(held) == 1


def test_dropping_forgets_whole_frames_unreleased():
    held: HeldRecords[tuple[int, str]] = HeldRecords()
    held.hold("a", (0, "a-prediction"))
    held.hold("a", (1, "a-signal"))  # one record of frame a is on partition 1
    held.hold("b", (0, "b-prediction"))
    assert held.drop(lambda token: token[0] == 1) == ["a"]
    assert len(held) == 1
    assert held.settled(lambda _frame: False) == [(0, "b-prediction")]
