"""The rollback agent: a loop over monitor signals that rolls a misbehaving model back.

The rules are :mod:`streams.rollback`'s.  When one fires, the agent rolls the
registry back to the last known-good version (only if the judged version
still serves), broadcasts the change on ``pds.control`` (the detector agents
swap before their next batch), audits it on ``pds.decisions`` and raises a
critical alert.  With ``SECMLOPS_POLICY_DRY_RUN=1`` it only says what it
would have done (an alert and a decision record), which is how a new rule
is tried on a live fleet.

Several workers each see some cameras' signals; the registry check
(``expected``) and the cool-down keep them from rolling back twice.

Canaries (``secmlops models promote VERSION --canary SECONDS``) are decided
here too: the detector agents compare the candidate with the serving version
on the same frames (:mod:`streams.canary`); the candidate is aborted and
marked bad when :data:`CANARY_RULE` fires, and promoted when its period ends
with at least :data:`CANARY_MIN_FRAMES` frames compared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import faust

from detectors.monitors.registry import available, load
from model_store.errors import ModelStoreError, StaleRollbackError
from model_store.registry import Registry
from model_store.signing import Verifier
from streams.agents.alerts import raise_alert
from streams.app import app, signals_topic
from streams.app import settings as app_settings
from streams.canary import CANARY_MONITOR
from streams.clients import redis_client
from streams.control import announce, audit
from streams.events import Alert, InvalidEvent, Signal, decode, new_id, signals_in
from streams.rollback import RollbackPolicy, Rule, Trigger, load_rules

__all__ = ["rollback_policy"]

log = logging.getLogger(__name__)

SERVING_REFRESH_S = 0.25  # how stale the agent's idea of the serving version may be
#: A canary is aborted when it departs from the serving version on half of 30 paired frames.
CANARY_RULE = Rule("canary", (CANARY_MONITOR,), window=30, min_samples=10, cooldown_s=0)
CANARY_MIN_FRAMES = 30  # fewer frames compared by the end of the period: not promoted

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")


def _alert(severity: str, message: str, trigger: Trigger, **evidence: str) -> Alert:
    return Alert(
        alert_id=new_id(),
        ts_ns=time.time_ns(),
        severity=severity,  # type: ignore[arg-type]
        source="policy",
        message=message[:2000],
        evidence={
            "rule": trigger.rule,
            "version": trigger.version,
            "rate": round(trigger.rate, 3),
            **evidence,
        },
    )


def act(registry: Registry, trigger: Trigger) -> Alert:
    """Carry out a trigger (blocking: runs in the policy's executor); the alert to raise."""
    name, settings = app_settings.model_name, app_settings
    actor = f"policy:{trigger.rule}"
    if settings.policy_dry_run:
        reason = f"dry run, nothing changed: would roll back {name}@{trigger.version}: "
        audit(
            settings,
            action="alert",
            subject=f"{name}@{trigger.version}",
            actor=actor,
            reason=reason + trigger.reason,
        )
        return _alert("warning", reason + trigger.reason, trigger)
    try:
        bad, good = registry.rollback(
            name, actor=actor, reason=trigger.reason, expected=trigger.version
        )
    except StaleRollbackError as exc:
        log.info("no rollback: %s", exc)
        return _alert("info", f"no rollback needed: {exc}", trigger)
    except ModelStoreError as exc:
        return _alert("critical", f"cannot roll back {name}@{trigger.version}: {exc}", trigger)
    announce(
        settings, command="rollback", model=name, version=good, actor=actor, reason=trigger.reason
    )
    message = f"rolled back {name} from version {bad} to {good}: {trigger.reason}"
    return _alert("critical", message, trigger, from_version=bad, to_version=good)


class _Canary:
    """The policy's view of a running canary: its rule, and how many frames were compared."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.compared = 0
        self.policy = RollbackPolicy([CANARY_RULE], {CANARY_MONITOR: CANARY_MONITOR})

    def follow(self, version: str | None) -> None:
        if version != self.version:
            self.version, self.compared = version, 0
            self.policy = RollbackPolicy([CANARY_RULE], {CANARY_MONITOR: CANARY_MONITOR})


_canary = _Canary()


def finish_canary(registry: Registry, trigger: Trigger | None) -> Alert | None:
    """Abort the canary on a trigger, or end it when its time is up (blocking)."""
    name, settings = app_settings.model_name, app_settings
    record = registry.canary(name)
    if record is None or record["version"] != _canary.version:
        return None
    version, serving, compared = record["version"], record["serving"], _canary.compared
    if trigger is not None:
        promote, reason = False, trigger.reason
    elif time.time() < record["until"]:
        return None
    elif compared < CANARY_MIN_FRAMES:
        promote = False
        reason = f"only {compared} frames compared in the canary period (need {CANARY_MIN_FRAMES})"
    else:
        promote, reason = True, f"{compared} frames compared with version {serving}, no departure"
    if registry.end_canary(name, promote=promote, actor="policy:canary", reason=reason) is None:
        return None  # another worker finished it
    done = trigger or Trigger("canary", version, 0.0, compared, ())
    if promote:
        announce(
            settings,
            command="promote",
            model=name,
            version=version,
            actor="policy:canary",
            reason=f"canary passed: {reason}",
        )
        return _alert("info", f"{name}@{version} promoted after its canary: {reason}", done)
    audit(
        settings,
        action="rollback",
        subject=f"{name}@{version}",
        actor="policy:canary",
        reason=f"canary aborted: {reason}",
    )
    message = f"canary {name}@{version} aborted and marked bad, {serving} serves on: {reason}"
    return _alert("critical", message, done)


@app.agent(signals_topic, concurrency=1)
async def rollback_policy(stream: faust.StreamT) -> None:
    loop = asyncio.get_running_loop()
    kinds = {name: load(name).kind for name in available()}
    policy = RollbackPolicy(load_rules(app_settings.policy_file), kinds)
    registry = Registry(redis_client(app_settings), Verifier.from_settings(app_settings))
    serving, checked = None, 0.0
    async for events in stream.take_events(
        app_settings.worker_batch_size, within=app_settings.worker_batch_wait_s
    ):
        now = time.monotonic()
        if now - checked > SERVING_REFRESH_S:
            serving = await loop.run_in_executor(_pool, registry.active, app_settings.model_name)
            canary = await loop.run_in_executor(_pool, registry.canary, app_settings.model_name)
            _canary.follow(canary["version"] if canary else None)
            checked = now
        if serving is None:
            continue
        triggers: list[Trigger] = []
        signals: list[Signal] = []
        for event in events:
            try:
                signals += signals_in(decode(event.message.value or b""))
            except InvalidEvent:
                continue  # the gate counts these; the policy only needs real signals
        for signal in signals:
            if signal.monitor == CANARY_MONITOR:
                if _canary.version is not None and signal.model_version == _canary.version:
                    _canary.compared += 1
                    for fired in _canary.policy.update(signal, _canary.version, now):
                        alert = await loop.run_in_executor(_pool, finish_canary, registry, fired)
                        if alert is not None:
                            await raise_alert(alert)
                continue
            triggers += policy.update(signal, serving, now)
        for trigger in triggers:
            log.warning("policy %s fired: %s", trigger.rule, trigger.reason)
            await raise_alert(await loop.run_in_executor(_pool, act, registry, trigger))
            checked = 0.0  # re-read the serving version before the next batch


@app.timer(interval=1.0)
async def end_canaries() -> None:
    """Promote a canary whose period is over (the rule did not fire during it)."""
    if _canary.version is None:
        return
    loop = asyncio.get_running_loop()
    registry = Registry(redis_client(app_settings), Verifier.from_settings(app_settings))
    alert = await loop.run_in_executor(_pool, finish_canary, registry, None)
    if alert is not None:
        await raise_alert(alert)
