"""``secmlops quarantine``: review the frames the gate held back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from streams.cli_support import cli_settings, format_ts, parse_since

__all__ = ["quarantine"]


def _store(settings):  # noqa: ANN001, ANN202 - imported lazily, keeps --help fast
    from streams.clients import redis_client
    from streams.quarantine import QuarantineStore

    return QuarantineStore(redis_client(settings), settings.quarantine_retention_s)


@click.group()
def quarantine() -> None:
    """Review the frames the gate held back (kept in Redis with their evidence).

    \b
    Examples:
      secmlops quarantine list --since 1h
      secmlops quarantine show 3f2a...  --image frame.jpg
      secmlops quarantine release 3f2a... --reason "false alarm: sun glare"
      secmlops quarantine purge --older-than 7d
    """


@quarantine.command("list")
@click.option("--camera", "-c", help="Only this camera.")
@click.option("--since", help="Only since then: an age (10m, 2h, 7d) or an ISO time.")
@click.option("--status", type=click.Choice(["held", "released"]), help="Only this status.")
@click.option("--limit", "-n", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(
    camera: str | None, since: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """Held frames, newest first."""
    settings = cli_settings()
    items = _store(settings).list(
        camera=camera,
        since_s=parse_since(since) if since else None,
        status=status,
        limit=limit,
    )
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in items], indent=2))
        return
    if not items:
        click.echo("the quarantine is empty" + (" for these filters" if camera or since else ""))
        return
    for item in items:
        r = item.record
        click.echo(
            f"{format_ts(r.ts_ns / 1e9)}  {r.frame_id}  {r.camera_id:>12s} #{r.seq:<6d} "
            f"v{r.model_version:<4s} {item.status:8s} {', '.join(r.reasons)}"
        )


@quarantine.command("show")
@click.argument("frame_id")
@click.option("--image", type=click.Path(path_type=Path), help="Write the held frame here.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(frame_id: str, image: Path | None, as_json: bool) -> None:
    """One held frame: why, with which scores, from which model."""
    settings = cli_settings()
    item = _store(settings).get(frame_id)
    if item is None:
        raise click.ClickException(f"{frame_id} is not in the quarantine (purged or expired?)")
    if image is not None:
        _write_image(item, image)
    doc = item.as_dict()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    r = item.record
    click.echo(f"frame     {r.frame_id} (camera {r.camera_id}, seq {r.seq})")
    click.echo(f"held      {format_ts(r.ts_ns / 1e9)}, {item.times}x, status {item.status}")
    click.echo(f"model     version {r.model_version}, {doc['boxes']} pedestrians predicted")
    click.echo(f"reasons   {', '.join(r.reasons)}")
    for name, score in sorted(r.scores.items()):
        click.echo(f"  {name:24s} {score:.4g}")
    click.echo(f"evidence  {r.thumbnail_ref or 'frame not kept (the gate had evicted it)'}")
    if item.released_by:
        click.echo(f"released  by {item.released_by}: {item.released_reason}")


def _write_image(item, path: Path) -> None:  # noqa: ANN001
    frame = item.decoded_frame()
    if frame is None or not frame.image:
        raise click.ClickException("the frame's image was not kept with this quarantine record")
    path.write_bytes(frame.image)
    click.echo(f"wrote {path} ({frame.encoding}, {frame.width}x{frame.height})")


@quarantine.command("release")
@click.argument("frame_ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why, for the audit log.")
def release(frame_ids: tuple[str, ...], reason: str) -> None:
    """Send held frames through the pipeline again, as a reviewer's decision.

    The frame goes back to pds.frames as it was signed; the gate waives the
    replay alarm integrity raises on it, and every other monitor judges it
    again with the model that serves now.  Each release is audited on
    pds.decisions.
    """
    from streams.clients import producer
    from streams.control import audit
    from streams.topics import TOPICS

    settings = cli_settings()
    store = _store(settings)
    kafka = producer(settings, client_id="secmlops-quarantine")
    try:
        for frame_id in frame_ids:
            item = store.get(frame_id)
            if item is None:
                raise click.ClickException(f"{frame_id} is not in the quarantine")
            if item.frame is None:
                raise click.ClickException(
                    f"{frame_id}: its frame was not kept, so it cannot go through again"
                )
            camera = item.record.camera_id
            store.mark_released(frame_id, actor=settings.actor, reason=reason)
            kafka.send(TOPICS.frames.name, key=camera.encode(), value=item.frame).get(30)
            audit(
                settings,
                action="release",
                subject=frame_id,
                actor=settings.actor,
                reason=reason,
                camera_id=camera,
            )
            click.echo(f"released {frame_id} (camera {camera}); it is being judged again")
    finally:
        kafka.close(timeout=10)


@quarantine.command("purge")
@click.argument("frame_ids", nargs=-1)
@click.option("--older-than", help="Everything held longer than this (e.g. 7d, 12h).")
@click.option("--all", "everything", is_flag=True, help="Everything.")
@click.option("--yes", is_flag=True, help="Do not ask.")
def purge(frame_ids: tuple[str, ...], older_than: str | None, everything: bool, yes: bool) -> None:
    """Delete held frames and their evidence for good (audited on pds.decisions)."""
    from streams.control import audit

    if bool(frame_ids) + bool(older_than) + everything != 1:
        raise click.UsageError("give FRAME_IDS, --older-than or --all (one of them)")
    settings = cli_settings()
    store = _store(settings)
    if frame_ids:
        gone = store.purge(list(frame_ids))
        what = ", ".join(frame_ids)
    else:
        age = 0.0 if everything else time.time() - parse_since(older_than)  # type: ignore[arg-type]
        if not yes:
            which = "every held frame" if everything else f"frames held over {older_than}"
            click.confirm(f"purge {which}?", abort=True)
        gone = store.purge(older_than_s=age)
        what = "all" if everything else f"older than {older_than}"
    audit(
        settings, action="purge", subject=what, actor=settings.actor, reason=f"{len(gone)} purged"
    )
    click.echo(f"purged {len(gone)} frame(s)")
