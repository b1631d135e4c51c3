"""Running monitors on a stream: per-camera state, failing closed, alert episodes, the join."""

from __future__ import annotations

import math

import pytest

from detectors.monitors.base import Monitor, Observation, Score, Verdict, quantile_threshold
from streams.events import (
    MAX_EVENT_BYTES,
    MAX_SIGNALS,
    Box,
    Frame,
    Prediction,
    Signal,
    Timing,
    decode,
    encode,
)
from streams.monitoring import AlertTracker, Joiner, MonitorBank, pack_signals, to_signal


class Counting(Monitor):
    """Examples: scores how many frames of its camera it has seen."""

    name, kind, consumes = "test.counting", "drift", "frames"

    def reset(self) -> None:
        self.seen = 0

    def score(self, observation: Observation) -> Score:
        self.seen += 1
        return Score(float(self.seen), f"seen {self.seen}")

    def online_state(self) -> dict:
        return {"seen": self.seen}

    def load_online_state(self, data) -> None:
        if data:
            self.seen = int(data["seen"])


class Broken(Counting):
    name = "test.broken"

    def score(self, observation: Observation) -> Score:
        raise RuntimeError("bug in the monitor")


def obs(camera: str, seq: int) -> Observation:
    return Observation(camera, f"{seq:032x}", seq, seq)


def test_each_camera_gets_its_own_monitor_instance():
    bank = MonitorBank(Counting)
    verdicts = bank.verdicts([obs("a", 0), obs("b", 0), obs("a", 1), obs("a", 2)])
    assert [v.score for v in verdicts] == [1.0, 1.0, 2.0, 3.0]
    assert set(bank.cameras) == {"a", "b"}


def test_a_camera_calibration_applies_to_that_camera_and_star_to_the_rest():
    state = Counting(threshold=2.5).state()
    bank = MonitorBank(Counting, {"a": state, "*": {**state, "threshold": 0.5}})
    assert bank.monitor("a").threshold == 2.5
    assert bank.monitor("z").threshold == 0.5
    assert math.isinf(MonitorBank(Counting).monitor("a").threshold)


def test_recalibration_changes_thresholds_but_keeps_what_the_monitor_learned():
    bank = MonitorBank(Counting, {"*": Counting(threshold=10).state()})
    bank.verdicts([obs("a", i) for i in range(3)])
    bank.recalibrate({"*": Counting(threshold=1).state()})
    (verdict,) = bank.verdicts([obs("a", 3)])
    assert (verdict.score, verdict.threshold, verdict.alarm) == (4.0, 1.0, True)


class Windowed(Counting):
    """Examples: a monitor with a parameter."""

    name = "test.windowed"
    params = ("window",)

    def __init__(self, *, window: int = 10, threshold: float = math.inf) -> None:
        self.window = window
        super().__init__(threshold=threshold)


def test_a_recalibration_with_new_parameters_restarts_the_cameras_online_state():
    bank = MonitorBank(Windowed, {"*": Windowed(window=10, threshold=10).state()})
    bank.verdicts([obs("a", i) for i in range(3)])
    bank.recalibrate({"*": Windowed(window=10, threshold=5).state()})
    assert bank.verdicts([obs("a", 3)])[0].score == 4.0, "same parameters: state kept"
    bank.recalibrate({"*": Windowed(window=20, threshold=1).state()})
    (verdict,) = bank.verdicts([obs("a", 4)])
    assert bank.cameras["a"].window == 20
    assert (verdict.score, verdict.threshold) == (1.0, 1.0), "new parameters: state restarts"


def test_a_camera_resumes_from_its_saved_state_and_checkpoints_give_what_was_used():
    saved = {"a": {"seen": 41}, "b": {"bogus": True}}
    bank = MonitorBank(Counting, resume=saved.get)
    verdicts = bank.verdicts([obs("a", 0), obs("b", 0), obs("c", 0)])
    assert [v.score for v in verdicts] == [42.0, 1.0, 1.0], "a resumed; b unreadable; c new"
    assert bank.checkpoint() == {"a": {"seen": 42}, "b": {"seen": 1}, "c": {"seen": 1}}
    assert bank.checkpoint() == {}, "nothing used since"
    bank.verdicts([obs("a", 1)])
    saved.update(checkpoint := bank.checkpoint())
    assert checkpoint == {"a": {"seen": 43}}

    bank.forget()
    assert bank.cameras == {}
    assert bank.verdicts([obs("a", 2)])[0].score == 44.0, "forgotten, then resumed"


def test_a_monitor_that_raises_fails_closed_with_the_reason():
    verdicts = MonitorBank(Broken).verdicts([obs("a", 0), obs("a", 1)])
    assert all(v.alarm for v in verdicts)
    assert verdicts[0].reason.startswith("monitor_error: RuntimeError: bug in the monitor")


def test_a_verdict_becomes_a_valid_signal_event():
    pred = Prediction("0" * 32, "a", 0, 0, "m", "7", [Box(1, 2, 3, 4, 0.5)], Timing(), 0, "2:41")
    o = Observation.of_prediction(pred)
    signal = to_signal(o, Verdict("test.counting", math.inf, 2.0, True, "x" * 5000))
    back = decode(encode(signal))
    assert (back.frame_id, back.model_version, back.alarm) == ("0" * 32, "7", True)
    assert back.delivery == "2:41", "names the frame record, for the gate"
    assert back.score == 1e9
    assert len(back.reason) == 2000


def a_signal(camera: str, seq: int, reason: str = "") -> Signal:
    return Signal(f"{seq:032x}", camera, seq, "test.counting", 0.0, 1.0, False, seq, None, reason)


def test_signals_are_packed_one_camera_a_record_in_order():
    signals = [a_signal(cam, seq) for seq in range(5) for cam in ("a", "b")]
    records = pack_signals(signals)
    assert [[s.camera_id for s in r.signals] for r in records] == [["a"] * 5, ["b"] * 5]
    assert [s.seq for s in records[0].signals] == list(range(5))
    assert pack_signals([]) == []


def test_a_long_batch_is_split_within_the_record_limits():
    many = pack_signals([a_signal("a", seq) for seq in range(MAX_SIGNALS + 1)])
    assert [len(r.signals) for r in many] == [MAX_SIGNALS, 1]
    # Reasons at their longest, in 4-byte characters: still every record fits in Kafka.
    wordy = pack_signals([a_signal("a", seq, "\U0001f6b6" * 2000) for seq in range(MAX_SIGNALS)])
    assert len(wordy) > 1
    assert sum(len(r.signals) for r in wordy) == MAX_SIGNALS
    assert all(len(encode(r)) < MAX_EVENT_BYTES for r in wordy)


def test_alerts_fire_once_per_episode_not_once_per_frame():
    tracker = AlertTracker("adversarial", quiet_frames=3)
    alarm, calm = Verdict("m", 5, 1, True, "bad"), Verdict("m", 0, 1, False)
    pattern = [alarm, alarm, calm, alarm, calm, calm, calm, alarm]
    alerts = [tracker.update(obs("a", i), v) for i, v in enumerate(pattern)]
    fired = [i for i, a in enumerate(alerts) if a is not None]
    assert fired == [0, 7]
    assert alerts[0].severity == "critical"
    assert alerts[0].camera_id == "a"
    assert decode(encode(alerts[0])).first_seq == 0


def test_alert_episodes_are_per_camera():
    tracker = AlertTracker("drift")
    alarm = Verdict("m", 5, 1, True, "bad")
    assert tracker.update(obs("a", 0), alarm).severity == "warning"
    assert tracker.update(obs("b", 0), alarm) is not None
    assert tracker.update(obs("a", 1), alarm) is None


def _frame(i: int) -> Frame:
    return Frame(f"{i:032x}", "a", i, i, 8, 8, "jpeg", image=b"x")


def _prediction(i: int) -> Prediction:
    return Prediction(f"{i:032x}", "a", i, i, "m", "1", [], Timing(), i)


def test_the_join_pairs_frames_and_predictions_in_either_order():
    joiner = Joiner()
    assert joiner.add_frame(_frame(1), "extra") is None
    assert joiner.add_prediction(_prediction(1))[1:] == ("extra", _prediction(1))
    assert joiner.add_prediction(_prediction(2)) is None
    frame, _, prediction = joiner.add_frame(_frame(2))
    assert frame.frame_id == prediction.frame_id
    assert len(joiner) == 0


def test_a_frame_id_seen_twice_pairs_twice():
    joiner = Joiner()
    assert joiner.add_frame(_frame(5), "first") is None
    assert joiner.add_frame(_frame(5), "replayed") is None
    assert joiner.add_prediction(_prediction(5))[1] == "first"
    assert joiner.add_prediction(_prediction(5))[1] == "replayed"
    assert len(joiner) == 0


def test_the_join_is_bounded_and_reports_predictions_that_never_met_their_frame():
    joiner, orphans = Joiner(capacity=2), []
    for i in range(5):
        joiner.add_frame(_frame(100 + i))  # frames the detector rejected: silently forgotten
        joiner.add_prediction(_prediction(i), orphans.append)
    assert len(joiner) == 4
    assert [p.seq for p in orphans] == [0, 1, 2]


@pytest.mark.parametrize(
    ("scores", "fpr", "expected"),
    [([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.1, 9), ([1, 2, 3], 0.01, 3), ([5, math.nan, 1], 0.5, 1)],
)
def test_quantile_threshold_lets_at_most_the_target_fraction_exceed(scores, fpr, expected):
    threshold = quantile_threshold(scores, fpr)
    assert threshold == expected
    finite = [s for s in scores if math.isfinite(s)]
    assert sum(s > threshold for s in finite) <= fpr * len(finite)


def test_quantile_threshold_refuses_nonsense():
    with pytest.raises(ValueError, match="target_fpr"):
        quantile_threshold([1.0], 0.0)
    with pytest.raises(ValueError, match="no finite scores"):
        quantile_threshold([math.nan], 0.1)
