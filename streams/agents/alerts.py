"""Sending alerts from agents: every one passes the process's dedup and rate limiter first."""

from __future__ import annotations

import logging
import time

from streams.alerting import AlertLimiter
from streams.app import alerts_topic
from streams.events import Alert, encode

__all__ = ["raise_alert"]

log = logging.getLogger(__name__)

LIMITER = AlertLimiter()


async def raise_alert(alert: Alert) -> bool:
    """Send ``alert`` to ``pds.alerts`` unless the limiter holds it back; True if sent."""
    allowed = LIMITER.allow(alert, time.monotonic())
    if allowed is None:
        return False
    log.warning("ALERT %s %s", allowed.severity.upper(), allowed.message)
    key = (allowed.camera_id or allowed.source).encode()
    await alerts_topic.send(key=key, value=encode(allowed))
    return True
