"""What every ``secmlops`` command group shares."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import click

from streams.settings import Settings, SettingsError

__all__ = ["cli_settings", "format_ts", "parse_since"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def cli_settings() -> Settings:
    """Settings from the environment, or a clean CLI error naming the bad variable."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time as Unix seconds: an age (``90s``, ``10m``, ``2h``, ``7d``) or ISO 8601.

    >>> parse_since("10m", now=1000.0)
    400.0
    >>> parse_since("2026-11-28T07:00:00Z")
    1795849200.0
    """
    now = time.time() if now is None else now
    age = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if age:
        return now - float(age.group(1)) * _UNITS[age.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an age (30s, 10m, 2h, 7d) nor an ISO time (2026-11-28T07:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_ts(ts_s: float) -> str:
    """UTC, to the second, as the CLIs print times."""
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
