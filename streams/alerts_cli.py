"""``secmlops alerts``: the alert history, or a live view that follows ``pds.alerts``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import click
import msgspec

from streams.cli_support import cli_settings, format_ts, parse_since
from streams.events import Alert

__all__ = ["alerts", "format_alert", "read_alerts"]

SEVERITIES = ("info", "warning", "critical")
_COLOURS = {"info": "cyan", "warning": "yellow", "critical": "red"}


def read_alerts(settings, since_s: float | None, follow: bool) -> Iterator[Alert | None]:  # noqa: ANN001
    """Alerts from ``since_s`` (Unix seconds; None: from now), in order.

    Without ``follow`` it ends at the end of the topic as it was when called;
    with it, it yields ``None`` whenever a poll found nothing, so that a caller
    can notice Ctrl-C or a deadline.
    """
    from kafka import TopicPartition

    from streams.clients import consumer
    from streams.events import InvalidEvent, decode
    from streams.topics import TOPICS

    kafka = consumer(settings, client_id="secmlops-alerts")
    try:
        parts = [
            TopicPartition(TOPICS.alerts.name, p)
            for p in sorted(kafka.partitions_for_topic(TOPICS.alerts.name) or ())
        ]
        kafka.assign(parts)
        ends = kafka.end_offsets(parts)
        if since_s is None:
            kafka.seek_to_end(*parts)
        else:
            found = kafka.offsets_for_times({tp: int(since_s * 1000) for tp in parts})
            for tp in parts:
                kafka.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        while True:
            if not follow and all(kafka.position(tp) >= ends[tp] for tp in parts):
                return
            batches = kafka.poll(timeout_ms=500)
            if not batches:
                yield None
            for records in batches.values():
                for record in records:
                    try:
                        yield decode(record.value, Alert)
                    except InvalidEvent:
                        continue  # not ours to show; the topic is write-protected in production
    finally:
        kafka.close()


def format_alert(alert: Alert, colour: bool = True) -> str:
    """One line: time, severity, camera and frame range, source, message, evidence."""
    frames = ""
    if alert.first_seq is not None:
        last = alert.last_seq if alert.last_seq is not None else alert.first_seq
        frames = f" [{alert.first_seq}" + (f"-{last}]" if last != alert.first_seq else "]")
    severity = alert.severity.upper().ljust(8)
    if colour:
        severity = click.style(severity, fg=_COLOURS[alert.severity], bold=True)
    evidence = " ".join(f"{k}={v}" for k, v in alert.evidence.items())
    return (
        f"{format_ts(alert.ts_ns / 1e9)} {severity} {alert.camera_id or '*'}{frames} "
        f"{alert.source}: {alert.message}" + (f"  ({evidence})" if evidence else "")
    )


@click.command("alerts")
@click.option("--follow", "-f", is_flag=True, help="Keep showing new alerts as they come.")
@click.option("--since", help="From then: an age (10m, 2h, 7d) or an ISO time [default: 1h].")
@click.option("--camera", "-c", help="Only this camera.")
@click.option(
    "--severity",
    "-s",
    type=click.Choice(SEVERITIES),
    default="info",
    show_default=True,
    help="This severity and above.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--timeout", type=float, help="With --follow: stop after this many seconds.")
def alerts(
    follow: bool,
    since: str | None,
    camera: str | None,
    severity: str,
    as_json: bool,
    timeout: float | None,
) -> None:
    """Show alerts: the last hour's, or a live view with --follow.

    \b
    Examples:
      secmlops alerts                        the last hour
      secmlops alerts --since 2026-11-28T07:00:00Z --severity critical
      secmlops alerts --follow --camera cam-3
      secmlops alerts -f --json | jq .message
    """
    settings = cli_settings()
    if since is not None:
        start: float | None = parse_since(since)
    else:
        start = None if follow else parse_since("1h")
    floor = SEVERITIES.index(severity)
    deadline = time.monotonic() + timeout if timeout else None
    shown = 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a --follow view quietly
        for alert in read_alerts(settings, start, follow):
            if deadline is not None and time.monotonic() > deadline:
                break
            if alert is None:
                continue
            if camera and alert.camera_id != camera:
                continue
            if SEVERITIES.index(alert.severity) < floor:
                continue
            shown += 1
            if as_json:
                click.echo(json.dumps(msgspec.to_builtins(msgspec.structs.asdict(alert))))
            else:
                click.echo(format_alert(alert))
    if not follow and not as_json and shown == 0:
        click.echo("no alerts for these filters")
