"""Rollback rules: fire once on a misbehaving serving version, never on stale or sparse evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.events import Signal
from streams.rollback import DEFAULT_RULES, RollbackPolicy, Rule, load_rules

KINDS = {"health": "health", "drift.detections": "drift", "integrity": "integrity"}


def signal(alarm: bool, monitor: str = "health", version: str | None = "2") -> Signal:
    return Signal(
        frame_id="0" * 32,
        camera_id="cam",
        seq=0,
        monitor=monitor,
        score=5.0 if alarm else 0.0,
        threshold=3.0,
        alarm=alarm,
        ts_ns=0,
        model_version=version,
    )


def feed(policy: RollbackPolicy, alarms: list[bool], serving: str = "2", now: float = 0.0):
    fired = []
    for alarm in alarms:
        fired += policy.update(signal(alarm, version=serving), serving, now)
    return fired


def test_a_rule_fires_once_the_alarm_rate_reaches_its_trigger_with_enough_samples():
    policy = RollbackPolicy([Rule("h", ("health",), window=10, min_samples=4, trigger=0.5)], KINDS)
    assert feed(policy, [True, True, True]) == []  # three samples are not enough
    [trigger] = feed(policy, [True])
    assert (trigger.rule, trigger.version, trigger.samples) == ("h", "2", 4)
    assert trigger.rate == 1.0 and trigger.monitors == ("health",)
    assert "health alarmed on 100% of the last 4 frames of version 2" in trigger.reason


def test_hysteresis_one_bad_stretch_is_one_rollback():
    rule = Rule("h", ("health",), window=10, min_samples=4, trigger=0.5, clear=0.2, cooldown_s=0)
    policy = RollbackPolicy([rule], KINDS)
    assert len(feed(policy, [True] * 4)) == 1
    assert feed(policy, [True] * 20) == []  # still bad: no second trigger
    assert feed(policy, [False] * 9) == []  # 1 of 10 alarming: below clear, re-armed
    assert len(feed(policy, [True] * 5)) == 1


def test_cooldown_keeps_a_rearmed_rule_quiet():
    rule = Rule("h", ("health",), window=4, min_samples=4, trigger=0.5, clear=0.3, cooldown_s=60)
    policy = RollbackPolicy([rule], KINDS)
    assert len(feed(policy, [True] * 4, now=0.0)) == 1
    feed(policy, [False] * 4, now=1.0)
    assert feed(policy, [True] * 4, now=30.0) == []
    feed(policy, [False] * 4, now=31.0)
    assert len(feed(policy, [True] * 4, now=61.0)) == 1


def test_a_new_serving_version_is_judged_on_its_own_frames():
    policy = RollbackPolicy([Rule("h", ("health",), window=10, min_samples=4)], KINDS)
    feed(policy, [True] * 3, serving="2")
    assert feed(policy, [True] * 3, serving="3") == []  # the window started again
    assert len(feed(policy, [True], serving="3")) == 1


def test_signals_about_a_version_that_no_longer_serves_are_ignored():
    policy = RollbackPolicy([Rule("h", ("health",), window=10, min_samples=2)], KINDS)
    stale = [policy.update(signal(True, version="2"), "1", 0.0) for _ in range(5)]
    assert stale == [[]] * 5


def test_rules_watch_monitors_by_name_or_kind_and_ignore_the_rest():
    policy = RollbackPolicy([Rule("d", ("drift",), window=4, min_samples=2)], KINDS)
    assert policy.update(signal(True, "integrity"), "2", 0.0) == []
    assert policy.update(signal(True, "drift.detections"), "2", 0.0) == []
    assert len(policy.update(signal(True, "drift.detections"), "2", 0.0)) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"monitors": ()}, "list the monitors"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_samples": 50, "window": 10}, "min_samples"),
        ({"trigger": 0.1, "clear": 0.2}, "clear < trigger"),
        ({"cooldown_s": -1}, "cooldown"),
    ],
)
def test_a_rule_that_makes_no_sense_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rule(**{"name": "r", "monitors": ("health",), **kwargs})


def test_rules_load_from_a_yaml_file_or_default(tmp_path: Path):
    assert load_rules(None) == DEFAULT_RULES
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - {name: h, monitors: health, window: 60, min_samples: 20}\n")
    assert load_rules(path) == (Rule("h", ("health",), window=60, min_samples=20),)
    path.write_text("rules:\n  - {name: h, monitors: [health], windw: 60}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_rules(path)
    path.write_text("rules: []\n")
    with pytest.raises(ValueError, match="expected 'rules:'"):
        load_rules(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_rule_names_are_unique():
    with pytest.raises(ValueError, match="unique"):
        RollbackPolicy([Rule("a", ("health",)), Rule("a", ("drift",))], KINDS)
