"""Broadcast a model change on ``pds.control`` and record it on ``pds.decisions``."""

from __future__ import annotations

import time

from streams.clients import producer
from streams.events import Control, Decision, encode, new_id
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["announce", "audit"]


def announce(
    settings: Settings, *, command: str, model: str, version: str, actor: str, reason: str
) -> Control:
    """Send the control command to every agent and its audit record; waits for both acks."""
    now = time.time_ns()
    control = Control(
        command_id=new_id(),
        ts_ns=now,
        command=command,  # type: ignore[arg-type]
        model=model,
        version=version,
        actor=actor[:256],
        reason=reason[:2000],
    )
    decision = Decision(
        decision_id=new_id(),
        ts_ns=now,
        action=command,  # type: ignore[arg-type]
        subject=f"{model}@{version}",
        actor=actor[:256],
        reason=reason[:2000],
    )
    kafka = producer(settings, client_id="secmlops-control")
    try:
        kafka.send(TOPICS.control.name, key=model.encode(), value=encode(control)).get(timeout=30)
        kafka.send(TOPICS.decisions.name, key=model.encode(), value=encode(decision)).get(
            timeout=30
        )
    finally:
        kafka.close(timeout=10)
    return control


def audit(
    settings: Settings,
    *,
    action: str,
    subject: str,
    actor: str,
    reason: str,
    camera_id: str | None = None,
) -> Decision:
    """Record a decision on ``pds.decisions`` (the audit log); waits for the ack."""
    decision = Decision(
        decision_id=new_id(),
        ts_ns=time.time_ns(),
        action=action,  # type: ignore[arg-type]
        subject=subject[:256],
        actor=actor[:256],
        reason=reason[:2000],
        camera_id=camera_id,
    )
    kafka = producer(settings, client_id="secmlops-audit")
    try:
        kafka.send(TOPICS.decisions.name, key=subject.encode(), value=encode(decision)).get(30)
    finally:
        kafka.close(timeout=10)
    return decision
