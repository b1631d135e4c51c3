"""Broadcast a model change on ``pds.control`` and record it on ``pds.decisions``."""

from __future__ import annotations

import time

from streams.clients import producer
from streams.events import Control, Decision, encode, new_id
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["announce"]


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
