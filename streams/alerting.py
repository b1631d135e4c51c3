"""Alert hygiene: deduplicate and rate-limit before anything reaches ``pds.alerts``.

An attack on forty cameras must not become forty thousand pages.  Agents
already raise one alert per alarm *episode* (:class:`~streams.monitoring.
AlertTracker`); the limiter adds two rules on top, per worker process:

* **dedup**: the same source on the same camera (or fleet-wide), about the
  same monitor or rule, alerts at most once per ``dedup_s``;
* **rate limit**: at most ``per_minute`` alerts of each severity in a
  sliding minute; critical alerts have their own budget, so info noise can
  never crowd them out.

What is held back is not lost: the next alert that passes for that key
carries ``suppressed`` (how many were held back) in its evidence.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import msgspec

from streams.events import Alert

__all__ = ["AlertLimiter"]


def _key(alert: Alert) -> tuple[str, ...]:
    """What makes two alerts "the same": source, camera, severity, and the monitor, rule
    and model version they name."""
    evidence = alert.evidence
    named = (str(evidence.get(k, "")) for k in ("monitor", "rule", "version"))
    return (alert.source, alert.camera_id or "*", alert.severity, *named)


@dataclass
class AlertLimiter:
    dedup_s: float = 30.0
    per_minute: int = 60
    _last: dict[tuple[str, ...], float] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    _held: dict[tuple[str, ...], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dedup_s < 0 or self.per_minute < 1:
            raise ValueError("need dedup_s >= 0 and per_minute >= 1")

    def allow(self, alert: Alert, now: float) -> Alert | None:
        """The alert to send (with ``suppressed`` added when some were held), or None."""
        key = _key(alert)
        last = self._last.get(key)
        recent = self._recent.setdefault(alert.severity, deque())
        while recent and now - recent[0] >= 60.0:
            recent.popleft()
        if (last is not None and now - last < self.dedup_s) or len(recent) >= self.per_minute:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        recent.append(now)
        held = self._held.pop(key, 0)
        if held:
            evidence = {**alert.evidence, "suppressed": held}
            return msgspec.structs.replace(alert, evidence=evidence)
        return alert

    @property
    def held(self) -> int:
        return sum(self._held.values())
