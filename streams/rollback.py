"""The rollback policy: when the serving model misbehaves, go back to the last known-good one.

Pure logic, no Kafka (the agent is :mod:`streams.agents.policy`).  A
:class:`Rule` watches the alarm rate of some monitors (by name or kind) over
the last ``window`` signals that concern the *serving* version, and fires
when the rate reaches ``trigger`` with at least ``min_samples`` signals in
the window.  Then it disarms: it fires again only after the rate fell below
``clear`` (hysteresis, so one bad stretch is one rollback) and after
``cooldown_s`` (so two rules, or two workers, cannot roll back twice in a
row).  A new serving version starts with empty windows: it is judged on its
own frames only.

Rules come from ``SECMLOPS_POLICY_FILE`` (YAML, see ``docs/policy.md``) or
:data:`DEFAULT_RULES`: roll back when model health alarms on half of the
last 30 frames of the new version.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from streams.events import Signal

__all__ = ["DEFAULT_RULES", "RollbackPolicy", "Rule", "Trigger", "load_rules"]


@dataclass(frozen=True)
class Rule:
    """When to roll back: an alarm rate of some monitors over the serving version's frames."""

    name: str
    monitors: tuple[str, ...]
    window: int = 30
    min_samples: int = 10
    trigger: float = 0.5
    clear: float = 0.1
    cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.monitors:
            raise ValueError(f"rule {self.name!r}: list the monitors (names or kinds) it watches")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError(f"rule {self.name!r}: need 1 <= min_samples <= window")
        if not 0.0 <= self.clear < self.trigger <= 1.0:
            raise ValueError(f"rule {self.name!r}: need 0 <= clear < trigger <= 1")
        if self.cooldown_s < 0:
            raise ValueError(f"rule {self.name!r}: cooldown_s must be >= 0")


DEFAULT_RULES = (Rule("model-health", ("health",)),)


@dataclass(frozen=True)
class Trigger:
    """A rule fired: the serving ``version`` should be rolled back."""

    rule: str
    version: str
    rate: float
    samples: int
    monitors: tuple[str, ...]

    @property
    def reason(self) -> str:
        return (
            f"rule {self.rule}: {', '.join(self.monitors)} alarmed on {self.rate:.0%} "
            f"of the last {self.samples} frames of version {self.version}"
        )


@dataclass
class _RuleState:
    window: deque[bool]
    armed: bool = True
    fired_at: float | None = None
    alarming: set[str] = field(default_factory=set)


class RollbackPolicy:
    """Feeds signals to the rules; :meth:`update` returns the triggers that fired."""

    def __init__(self, rules: Sequence[Rule], kinds: Mapping[str, str]) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        self.rules = tuple(rules)
        self.kinds = dict(kinds)
        self.version: str | None = None
        self._state = {r.name: _RuleState(deque(maxlen=r.window)) for r in self.rules}

    def _watches(self, rule: Rule, monitor: str) -> bool:
        return monitor in rule.monitors or self.kinds.get(monitor, "") in rule.monitors

    def update(self, signal: Signal, serving: str, now: float) -> list[Trigger]:
        """Count ``signal`` if it concerns the ``serving`` version; return what fired."""
        if serving != self.version:
            self.version = serving
            for state in self._state.values():  # a new version is judged afresh
                state.window.clear()
                state.alarming.clear()
                state.armed = True
        if signal.model_version not in (None, serving):
            return []  # about a version that no longer serves
        fired = []
        for rule in self.rules:
            if not self._watches(rule, signal.monitor):
                continue
            state = self._state[rule.name]
            state.window.append(signal.alarm)
            if signal.alarm:
                state.alarming.add(signal.monitor)
            rate = sum(state.window) / len(state.window)
            if not state.armed:
                state.armed = rate < rule.clear
                continue
            cooling = state.fired_at is not None and now - state.fired_at < rule.cooldown_s
            if len(state.window) >= rule.min_samples and rate >= rule.trigger and not cooling:
                state.armed, state.fired_at = False, now
                monitors = tuple(sorted(state.alarming))
                fired.append(Trigger(rule.name, serving, rate, len(state.window), monitors))
        return fired


def load_rules(path: Path | None) -> tuple[Rule, ...]:
    """Rules from a YAML file (``rules: [{name, monitors, window, ...}]``), or the defaults.

    Raises ``ValueError`` naming the file and the rule for anything it cannot use.
    """
    if path is None:
        return DEFAULT_RULES
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the policy file: {exc}") from None
    items = doc.get("rules") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected 'rules:' with a list of rules")
    known = {f.name for f in fields(Rule)}
    rules = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"{path}: rule {i + 1} needs a name")
        unknown = set(item) - known
        if unknown:
            raise ValueError(f"{path}: rule {item['name']!r}: unknown keys {sorted(unknown)}")
        monitors = item.get("monitors", ())
        item = {**item, "monitors": tuple([monitors] if isinstance(monitors, str) else monitors)}
        try:
            rules.append(Rule(**item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
    return tuple(rules)


def watched(rules: Iterable[Rule]) -> set[str]:
    """Every monitor name or kind some rule watches."""
    return {m for rule in rules for m in rule.monitors}
