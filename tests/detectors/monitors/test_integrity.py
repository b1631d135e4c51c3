"""Integrity across restarts: a frame record read again is not a replay; a replay is."""

from __future__ import annotations

from detectors.monitors.base import Observation
from detectors.monitors.integrity import StreamIntegrity


def obs(seq: int, delivery: str, frame_id: str | None = None) -> Observation:
    return Observation(
        "cam",
        frame_id or f"{seq:032x}",
        seq,
        seq * 33_000_000,
        received_ts_ns=seq * 33_000_000,
        delivery=delivery,
    )


def restarted(monitor: StreamIntegrity) -> StreamIntegrity:
    """A new worker's monitor, resumed from the state the old one saved."""
    fresh = StreamIntegrity()
    fresh.load_online_state(monitor.online_state())
    return fresh


def test_records_read_again_after_a_restart_keep_their_verdicts_and_change_nothing():
    first = StreamIntegrity()
    verdicts = [first.update(obs(s, f"0:{s}")) for s in (0, 1, 2, 4)]  # 3 is missing
    assert [v.reason for v in verdicts] == ["", "", "", "gap:1"]
    # Saved after frame 4, but the commit was after frame 1: frames 2 and 4 come again.
    second = restarted(first)
    again = [second.update(obs(s, f"0:{s}")) for s in (2, 4)]
    assert [(v.alarm, v.reason) for v in again] == [(False, ""), (True, "gap:1")]
    assert second.update(obs(5, "0:5")).reason == "", "the sequence goes on from 4"


def test_a_replay_is_a_new_record_of_an_old_frame_and_is_caught_after_a_restart_too():
    first = StreamIntegrity()
    for s in range(3):
        first.update(obs(s, f"0:{s}"))
    assert first.update(obs(1, "0:9")).reason == "replayed"
    second = restarted(first)
    assert second.update(obs(1, "0:10")).reason == "replayed"
    assert second.update(obs(1, "0:1")).reason == "", "the original record is still known"


def test_without_records_every_repeat_of_a_frame_id_is_a_replay():
    """Observations not read from Kafka (offline, calibration) name no record."""
    monitor = StreamIntegrity()
    monitor.update(obs(0, ""))
    assert monitor.update(obs(0, "")).reason == "replayed"


def test_state_saved_by_an_older_version_still_catches_replays():
    monitor = StreamIntegrity()
    monitor.load_online_state({"last_seq": 2, "last_ts": 0, "ids": [f"{s:032x}" for s in range(3)]})
    assert monitor.update(obs(1, "0:1")).reason == "replayed", "no record known: a replay"
    assert monitor.update(obs(3, "0:3")).reason == ""
