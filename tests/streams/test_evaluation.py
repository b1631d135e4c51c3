"""Scoring a drill: truth against outcomes, per injection type, with the report's stable keys."""

from __future__ import annotations

from streams.evaluation import Onset, Outcome, drift_onsets, score
from streams.events import Signal, Truth


def truth(seq: int, *injections: str, delivered: bool = True, **params: float) -> Truth:
    return Truth(
        frame_id=f"{seq:032x}",
        camera_id="cam",
        seq=seq,
        capture_ts_ns=seq * 33_000_000,
        injections=list(injections),
        params=params,
        delivered=delivered,
    )


def outcome(seq: int, kind: str = "trusted", *reasons: str, ts_ms: int = 0) -> Outcome:
    return Outcome(kind, f"{seq:032x}", ts_ms or seq * 33, tuple(reasons))  # type: ignore[arg-type]


def test_the_report_has_the_documented_keys_and_counts_every_outcome():
    report = score([truth(0), truth(1)], [outcome(0), outcome(1, "quarantined", "integrity")])
    assert {"frames", "lost_frames", "clean", "by_type", "quarantine", "outcomes"} <= set(report)
    assert report["frames"] == 2 and report["lost_frames"] == 0
    assert report["outcomes"] == {"trusted": 1, "quarantined": 1, "deadletter": 0}
    assert report["clean"] == {"frames": 2, "false_positive_rate": 0.5}


def test_attacked_frames_are_detected_when_not_trusted_and_delay_counts_from_the_stretch():
    frames = [truth(s) for s in range(10)] + [truth(s, "pgd") for s in range(10, 14)]
    outcomes = [outcome(s) for s in range(10)]
    outcomes += [outcome(10), outcome(11, "quarantined", "adversarial.energy")]
    outcomes += [outcome(12, "quarantined", "adversarial.energy"), outcome(13, "trusted")]
    pgd = score(frames, outcomes)["by_type"]["pgd"]
    assert pgd["frames"] == 4 and pgd["detection_rate"] == 0.5
    assert pgd["median_delay_frames"] == 1 and pgd["median_delay_ms"] == 33.3
    assert pgd["false_positive_rate"] == 0.0


def test_a_clean_frame_is_a_false_positive_only_for_the_family_that_flagged_it():
    frames = [truth(0), truth(1), truth(2, "pgd"), truth(3, "unsigned")]
    outcomes = [outcome(0, "quarantined", "integrity"), outcome(1)]
    outcomes += [outcome(2, "quarantined", "adversarial.energy"), outcome(3, "deadletter")]
    by_type = score(frames, outcomes)["by_type"]
    assert by_type["unsigned"]["false_positive_rate"] == 0.5  # frame 0, by integrity
    assert by_type["pgd"]["false_positive_rate"] == 0.0
    assert by_type["unsigned"]["detection_rate"] == 1.0


def test_a_dropped_frame_is_scored_on_the_gap_the_next_frame_shows():
    frames = [truth(0), truth(1, "drop", delivered=False), truth(2)]
    outcomes = [outcome(0), outcome(2, "quarantined", "integrity")]
    report = score(frames, outcomes)
    assert report["by_type"]["drop"]["detection_rate"] == 1.0
    assert report["clean"]["frames"] == 1 and report["lost_frames"] == 0


def test_a_replayed_copy_is_paired_with_the_second_outcome_of_the_old_frame():
    frames = [truth(0), truth(1), truth(2, "replay", delivered=False, **{"replay.of_seq": 0.0})]
    frames.append(truth(3))
    outcomes = [outcome(0), outcome(1), outcome(0, "quarantined", "integrity", ts_ms=500)]
    outcomes.append(outcome(3, "quarantined", "integrity"))
    replay = score(frames, outcomes)["by_type"]["replay"]
    assert replay["frames"] == 2  # the replayed copy, and the gap it left at frame 3
    assert replay["detection_rate"] == 1.0


def test_a_replayed_copy_decided_with_its_original_is_told_apart_by_its_record():
    # Decided in one gate step, the copy's quarantine landed before the original's trusted
    # prediction: the records' offsets, not the arrival order, say which is which.
    frames = [truth(0), truth(1), truth(2, "replay", delivered=False, **{"replay.of_seq": 0.0})]
    frames.append(truth(3))
    copy = Outcome("quarantined", f"{0:032x}", 99, ("integrity",), delivery="0:2")
    original = Outcome("trusted", f"{0:032x}", 99, delivery="0:0")
    outcomes = [outcome(1), copy, original, outcome(3, "quarantined", "integrity")]
    report = score(frames, outcomes)
    assert report["by_type"]["replay"]["detection_rate"] == 1.0
    assert report["clean"]["false_positive_rate"] == 0.0, "the original stays clean"


def test_a_frame_without_an_outcome_is_lost():
    report = score([truth(0), truth(1)], [outcome(0)])
    assert report["lost_frames"] == 1


def signal(seq: int, monitor: str, alarm: bool) -> Signal:
    return Signal(f"{seq:032x}", "cam", seq, monitor, 1.0, 0.5, alarm, seq)


def test_a_drift_onset_is_where_a_drift_monitor_starts_alarming():
    alarms = {"drift.image": [3, 4, 5, 9], "adversarial.energy": [1], "drift.detections": [4]}
    signals = [
        signal(seq, monitor, seq in on) for monitor, on in alarms.items() for seq in range(12)
    ]
    assert drift_onsets(reversed(signals)) == [
        Onset("cam", "drift.detections", 4),
        Onset("cam", "drift.image", 3),
        Onset("cam", "drift.image", 9),
    ]


def test_a_shift_is_detected_by_a_drift_onset_after_its_start():
    frames = [truth(s) for s in range(5)] + [truth(s, "fog") for s in range(5, 40)]
    onsets = [Onset("cam", "drift.image", 2), Onset("cam", "drift.image", 24)]
    fog = score(frames, [outcome(s) for s in range(40)], onsets)["by_type"]["fog"]
    assert fog["detection_rate"] == 1.0 and fog["median_delay_frames"] == 19
    missed = score(frames, [outcome(s) for s in range(40)])["by_type"]["fog"]
    assert missed["detection_rate"] == 0.0 and missed["undetected_stretches"] == 1


def test_throughput_and_latency_come_from_outcome_and_capture_times():
    frames = [truth(s) for s in range(3)]
    outcomes = [outcome(s, ts_ms=1000 + 100 * s) for s in range(3)]
    capture = {f.frame_id: (900 + 100 * i) * 1_000_000 for i, f in enumerate(frames)}
    report = score(frames, outcomes, capture_ns=capture)
    assert report["throughput_fps"] == 10.0
    assert report["latency_ms"] == {"p50": 100.0, "p99": 100.0}


def served(seq: int, version: str, kind: str = "trusted", *reasons: str) -> Outcome:
    return Outcome(kind, f"{seq:032x}", seq * 33, tuple(reasons), 1, version)  # type: ignore[arg-type]


def test_a_degrade_drill_is_detected_by_its_rollback_and_delayed_by_the_frames_it_served():
    # v2 (degraded) is promoted at frame 5; the first batches still ran on v1; v1 is back at 9.
    frames = [truth(s) for s in range(5)] + [truth(s, "degrade") for s in range(5, 15)]
    versions = ["1"] * 7 + ["2", "2"] + ["1"] * 6
    outcomes = [served(s, v) for s, v in enumerate(versions)]
    degrade = score(frames, outcomes, degraded_versions={"2"})["by_type"]["degrade"]
    assert degrade["family"] == "model" and degrade["frames"] == 10
    assert degrade["detection_rate"] == 1.0
    assert degrade["median_delay_frames"] == 4 and degrade["median_delay_ms"] == 133.3
    assert degrade["served_by_degraded"] == 2


def test_a_degraded_model_still_serving_at_the_end_of_its_stretch_was_not_rolled_back():
    frames = [truth(s) for s in range(3)] + [truth(s, "degrade") for s in range(3, 8)]
    outcomes = [served(s, "1") for s in range(3)] + [served(s, "2") for s in range(3, 8)]
    report = score(frames, outcomes, degraded_versions={"2"})
    degrade = report["by_type"]["degrade"]
    assert degrade["detection_rate"] == 0.0 and degrade["undetected_stretches"] == 1
    assert degrade["median_delay_frames"] is None
    assert report["clean"]["frames"] == 3  # frames of the drill are not clean ones


def test_model_health_holding_a_clean_frame_is_a_false_positive_of_the_degrade_drill():
    frames = [truth(0), truth(1), truth(2, "degrade"), truth(3, "degrade")]
    outcomes = [served(0, "1", "quarantined", "health"), served(1, "1")]
    outcomes += [served(2, "2"), served(3, "1")]
    degrade = score(frames, outcomes, degraded_versions={"2"})["by_type"]["degrade"]
    assert degrade["false_positive_rate"] == 0.5


def test_a_drift_onset_after_the_shift_ended_does_not_detect_it():
    frames = [truth(s) for s in range(5)] + [truth(s, "fog") for s in range(5, 15)]
    frames += [truth(s) for s in range(15, 30)]
    late = [Onset("cam", "drift.image", 20)]
    fog = score(frames, [outcome(s) for s in range(30)], late)["by_type"]["fog"]
    assert fog["detection_rate"] == 0.0


def test_quarantine_precision_counts_only_the_frames_a_quarantine_is_for():
    frames = [truth(0, "pgd"), truth(1, "fog"), truth(2), truth(3, "unsigned")]
    held = [outcome(s, "quarantined", "adversarial.energy") for s in range(3)]
    report = score(frames, [*held, outcome(3, "quarantined", "integrity")])
    assert report["quarantine"]["precision"] == 0.5  # the pgd and unsigned frames, of 4
