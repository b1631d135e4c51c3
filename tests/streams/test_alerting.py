"""The alert limiter: no pager storms, and nothing held back without a trace."""

from __future__ import annotations

import msgspec
import pytest

from streams.alerting import AlertLimiter
from streams.events import Alert


def alert(source: str = "integrity", camera: str | None = "cam", severity: str = "critical"):
    return Alert(
        alert_id="0" * 32,
        ts_ns=0,
        severity=severity,
        source=source,
        message="m",
        camera_id=camera,
        evidence={"score": 1.0},
    )


def test_the_same_source_and_camera_alerts_once_per_dedup_interval():
    limiter = AlertLimiter(dedup_s=30)
    assert limiter.allow(alert(), now=0.0) is not None
    assert limiter.allow(alert(), now=10.0) is None
    assert limiter.allow(alert(camera="other"), now=10.0) is not None
    assert limiter.allow(alert(source="gate"), now=10.0) is not None
    passed = limiter.allow(alert(), now=31.0)
    assert passed is not None and passed.evidence == {"score": 1.0, "suppressed": 1}
    assert limiter.held == 0


def test_each_severity_has_its_own_budget_per_minute():
    limiter = AlertLimiter(dedup_s=0, per_minute=3)
    infos = [limiter.allow(alert(camera=f"c{i}", severity="info"), now=1.0) for i in range(5)]
    assert sum(a is not None for a in infos) == 3
    assert limiter.allow(alert(camera="c9", severity="critical"), now=1.0) is not None
    assert limiter.allow(alert(camera="c7", severity="info"), now=61.5) is not None


def test_a_limiter_needs_a_budget():
    with pytest.raises(ValueError, match="per_minute"):
        AlertLimiter(per_minute=0)


def test_alerts_about_different_rules_or_monitors_are_not_the_same_alert():
    limiter = AlertLimiter(dedup_s=30)
    rollback = msgspec.structs.replace(alert(source="policy"), evidence={"rule": "model-health"})
    canary = msgspec.structs.replace(alert(source="policy"), evidence={"rule": "canary"})
    assert limiter.allow(rollback, now=0.0) is not None
    assert limiter.allow(canary, now=1.0) is not None
    assert limiter.allow(rollback, now=2.0) is None
