"""``secmlops monitors`` and ``secmlops calibrate``: what watches the stream, and its thresholds."""

from __future__ import annotations

import json

import click

from streams.cli_support import cli_settings

__all__ = ["calibrate", "monitors"]


@click.command("monitors")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--forget",
    "forget",
    multiple=True,
    metavar="CAMERA",
    help="Delete the monitors' saved state of this camera (repeatable), e.g. before "
    "replaying a drive again as the same camera. Stop the workers first: a running one "
    "keeps its own and saves it again.",
)
def monitors(as_json: bool, forget: tuple[str, ...]) -> None:
    """List the registered monitors (entry-point group secmlops.detectors) and which run.

    SECMLOPS_MONITORS picks them: all (default), none, or a list such as
    'integrity,drift.image' or 'all,-adversarial.squeeze'.  Under each
    monitor: its parameters and their defaults, which `secmlops calibrate
    -p MONITOR.PARAM=VALUE` sets.  Each monitor's per-camera state is saved
    in Redis and resumed after a restart; --forget deletes it.
    """
    from detectors.monitors.registry import MonitorLoadError, available, load, select

    settings = cli_settings()
    if forget:
        import redis

        from streams.checkpoints import forget_cameras
        from streams.clients import redis_client

        try:
            gone = forget_cameras(redis_client(settings), list(forget))
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis at {settings.redis_url}: {exc}") from exc
        click.echo(
            f"deleted the saved monitor state of {gone} of {len(forget)} cameras "
            f"({', '.join(forget)})"
        )
        return
    try:
        enabled = {cls.name for cls in select(settings.monitors)}
        rows = [(name, load(name)) for name in available()]
    except MonitorLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    defaults = {name: _defaults(cls) for name, cls in rows}
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": n,
                        "kind": c.kind,
                        "consumes": c.consumes,
                        "enabled": n in enabled,
                        "params": defaults[n],
                    }
                    for n, c in rows
                ],
                indent=2,
            )
        )
        return
    for name, cls in rows:
        mark = "on " if name in enabled else "off"
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        click.echo(f"{mark}  {name:22s} {cls.kind:12s} {cls.consumes:12s} {doc}")
        if defaults[name]:
            listed = ", ".join(f"{k}={v!r}" for k, v in defaults[name].items())
            click.echo(f"     {'':22s} params (secmlops calibrate -p): {listed}")


def _defaults(cls: type) -> dict[str, object]:
    """A monitor's parameters and their defaults, as ``secmlops calibrate -p`` sets them
    (a plug-in whose constructor fails is listed without them, not a crash)."""
    try:
        return dict(cls().state()["params"])
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


@click.command("calibrate")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--camera", "-c", "cameras", multiple=True, help="Camera id per source (default: file name)."
)
@click.option(
    "--target-fpr",
    type=click.FloatRange(0.0001, 0.5),
    default=0.01,
    show_default=True,
    help="Fraction of clean frames each monitor may flag.",
)
@click.option("--start", type=click.IntRange(0), default=0, help="First frame of each source.")
@click.option("--end", type=click.IntRange(1), default=None, help="Stop before this frame.")
@click.option("--resize", help="Resize frames to WIDTHxHEIGHT (as the replay will).")
@click.option("--version", "version", help="Model version to calibrate for (default: active).")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="MONITOR.PARAM=VALUE",
    help="Set a monitor's parameter, stored with its calibration "
    "(e.g. adversarial.squeeze.budget=0.1); repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Print the thresholds; store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the thresholds as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def calibrate(
    sources: tuple[str, ...],
    cameras: tuple[str, ...],
    target_fpr: float,
    start: int,
    end: int | None,
    resize: str | None,
    version: str | None,
    params: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Set every enabled monitor's threshold on clean footage, per camera, and store it.

    SOURCE is clean footage of a camera (a video, an image folder, or
    asset:NAME); its camera id must be the one the camera streams under.
    The frames are JPEG-encoded as a replay would, the served model version
    (signature verified) predicts on them, and each monitor sets its
    threshold so that about TARGET-FPR of these clean frames would alarm.
    The result is stored in Redis under the model version; running workers
    pick it up within seconds.  Parameters set with --param travel with it
    (a camera whose parameters change starts its monitor's online state
    again); `secmlops monitors` lists each monitor's, with its default.

    \b
    Examples:
      secmlops calibrate asset:sample-drive --end 900
      secmlops calibrate front.mp4 rear.mp4 -c front -c rear --target-fpr 0.005
      secmlops calibrate asset:sample-drive --end 900 \\
          -p adversarial.squeeze.budget=0.1 -p adversarial.squeeze.burst=32
    """
    from detectors.monitors.registry import MonitorLoadError, parse_params, select
    from model_store.catalog import build_detector
    from model_store.errors import ModelStoreError
    from model_store.registry import Registry
    from model_store.signing import Verifier
    from producers.cli import _camera_id, _resolve, _size
    from producers.sources import SourceError, interleave, open_source
    from streams.assets import AssetError
    from streams.calibration import CalibrationStore
    from streams.clients import redis_client
    from streams.offline import calibrate_monitors, record_footage

    settings = cli_settings()
    size = _size(None, None, resize)
    if cameras and len(cameras) != len(sources):
        raise click.UsageError(f"{len(cameras)} --camera ids for {len(sources)} sources")
    try:
        classes = select(settings.monitors)
        settings_of = parse_params(params, classes)
        paths = [_resolve(src, settings) for src in sources]
        ids = list(cameras) or [_camera_id(p) for p in paths]
        opened = [
            open_source(p, cam, start=start, end=end, resize=size)
            for p, cam in zip(paths, ids, strict=True)
        ]
        client = redis_client(settings)
        registry = Registry(client, Verifier.from_settings(settings))
        version = version or registry.active(settings.model_name)
        if version is None:
            raise click.ClickException(
                f"no active version of {settings.model_name!r}: run `secmlops models setup`"
            )
        detector = build_detector(
            registry.artifact(settings.model_name, version), registry.verifier, version=version
        )
        total = sum(s.expected or 0 for s in opened) or None
        footage = record_footage(interleave(opened), detector, total=total, progress=not quiet)
    except (SourceError, AssetError, MonitorLoadError, ModelStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot reach Redis at {settings.redis_url}: {exc}") from exc

    def report(monitor: str, camera: str, instance: object) -> None:
        if not (quiet or as_json):
            click.echo(f"  {camera:20s} {monitor:22s} threshold {instance.threshold:.6g}")  # type: ignore[attr-defined]

    if not (quiet or as_json):
        click.echo(f"calibrating {len(classes)} monitors on {len(footage)} camera(s)")
    states = calibrate_monitors(
        classes, footage, target_fpr, detector.detect_batch, on_done=report, params=settings_of
    )
    if not dry_run:
        meta = {
            "target_fpr": target_fpr,
            "sources": list(sources),
            "frames": {cam: len(f) for cam, f in footage.items()},
            "actor": settings.actor,
        }
        stored = CalibrationStore(client, settings.model_name).save(version, states, meta)
        if not as_json:
            click.echo(f"stored {stored} calibrations for {settings.model_name}@{version}")
    if as_json:
        click.echo(
            json.dumps(
                {m: {c: s["threshold"] for c, s in cams.items()} for m, cams in states.items()},
                indent=2,
            )
        )
