"""The ``secmlops`` command line.

Every command reads its configuration from ``SECMLOPS_*`` environment
variables (see the README); options override them for one run.
"""

from __future__ import annotations

import contextlib
import json
import sys

import click

from model_store.cli import models
from producers.cli import data, keys, replay
from streams.alerts_cli import alerts
from streams.allocator import tune_allocator
from streams.assets import AssetError
from streams.cli_support import cli_settings
from streams.eval_cli import evaluate
from streams.monitor_cli import calibrate, monitors
from streams.quarantine_cli import quarantine
from streams.settings import Settings, SettingsError
from streams.stack import Stack, StackError

__all__ = ["main"]


def _mib(value: int | None) -> str:
    return f"{value / 2**20:.0f} MiB" if value else "-"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="secmlops-pds")
def cli() -> None:
    """SecMLOps streaming monitor for pedestrian detection.

    \b
    Quick start:
      secmlops stack up        start the local Kafka broker and Redis
      secmlops worker          run the agents (Ctrl-C to stop)
      secmlops demo            the whole story on the local stack
    """
    # Before any model is loaded (the worker, calibrate, evaluate and the demo run models
    # in this process): SECMLOPS_TUNE_MALLOC, streams/allocator.py.  A bad setting is left
    # for the command itself to report, by name.
    with contextlib.suppress(SettingsError):
        tune_allocator(Settings.from_env().tune_malloc)


@cli.group()
def stack() -> None:
    """Start, stop and check the local Kafka broker and Redis.

    Services configured as external (SECMLOPS_KAFKA_BOOTSTRAP,
    SECMLOPS_REDIS_URL) are only health-checked, never started or stopped.
    """


@stack.command("up")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def stack_up(quiet: bool) -> None:
    """Start what is not running, create the topics, wait until healthy.

    Running it twice is harmless.  The first run downloads the pinned Kafka
    jars (about 45 MB) into the cache.
    """
    settings = cli_settings()
    try:
        started = Stack(settings).up(progress=not quiet)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, now in started.items():
        click.echo(f"{name}: {'started' if now else 'already running'}")
    click.echo(f"kafka bootstrap: {settings.kafka_bootstrap}\nredis url: {settings.redis_url}")


@stack.command("down")
def stack_down() -> None:
    """Stop the managed services; nothing is left running."""
    try:
        stopped = Stack(cli_settings()).down()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, was_running in stopped.items():
        click.echo(f"{name}: {'stopped' if was_running else 'not running'}")


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stack_status(as_json: bool) -> None:
    """Each service's address and health; exits 1 when one is unhealthy."""
    statuses = Stack(cli_settings()).status()
    if as_json:
        click.echo(json.dumps({s.name: s.as_dict() for s in statuses}, indent=2))
    else:
        for s in statuses:
            state = "healthy" if s.healthy else ("running, not answering" if s.running else "down")
            where = "managed" if s.managed else "external"
            click.echo(
                f"{s.name:6} {state:24} {s.address:28} {where:8} "
                f"pid={s.pid or '-'} rss={_mib(s.rss_bytes)}"
            )
    if not all(s.healthy for s in statuses):
        sys.exit(1)


@cli.command()
@click.option(
    "--loglevel",
    "-l",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--processes",
    "-p",
    type=int,
    default=None,
    help="Worker processes on this host, in one consumer group: 1 to one per pds.frames "
    "partition (default: SECMLOPS_WORKER_PROCESSES, or 1). On a GPU host several share "
    "the card and together pass one process's ceiling (docs/operations.md).",
)
def worker(loglevel: str, processes: int | None) -> None:
    """Run the monitor's agents against the configured Kafka (blocks).

    Batch size and wait come from SECMLOPS_WORKER_BATCH_SIZE and
    SECMLOPS_WORKER_BATCH_WAIT; the worker's web port from
    SECMLOPS_WORKER_WEB_PORT (with --processes, the next ports too, one
    each); the monitors that run from SECMLOPS_MONITORS (see 'secmlops
    monitors').  SIGINT or SIGTERM drains: frames in flight reach their
    outcome, then the worker stops.
    """
    import redis
    from kafka.errors import KafkaError

    from detectors.monitors.registry import MonitorLoadError
    from model_store.errors import ModelStoreError
    from streams.signing import SigningKeyError
    from streams.topics import CAMERA_PARTITIONS
    from streams.worker import preflight, run_worker
    from streams.worker_pool import check_processes, run_processes

    settings = cli_settings()
    count = settings.worker_processes if processes is None else processes
    try:
        if count == 1:
            run_worker(loglevel)
            return
        check_processes(count, settings, CAMERA_PARTITIONS)
        preflight(settings)  # once, clearly, rather than the same error from every process
        sys.exit(run_processes(count, loglevel, settings))
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc}); "
            "start the local stack with 'secmlops stack up' or set SECMLOPS_KAFKA_BOOTSTRAP"
        ) from exc
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot reach Redis at {settings.redis_url} ({exc}); "
            "start the local stack with 'secmlops stack up' or set SECMLOPS_REDIS_URL"
        ) from exc
    except (SigningKeyError, ModelStoreError, MonitorLoadError, ValueError) as exc:
        raise click.ClickException(f"the worker cannot start: {exc}") from exc


@cli.command()
def topics() -> None:
    """List the topics, their partitions, schemas and retention."""
    from streams.topics import TOPICS

    for spec in TOPICS:
        days = spec.retention_ms / 86_400_000
        click.echo(
            f"{spec.name:16} partitions={spec.partitions:<2} "
            f"schema={spec.schema.__struct_config__.tag:14} retention={days:g}d  "
            f"{spec.description}"
        )


@cli.command()
@click.option(
    "--frames",
    "-n",
    default=450,
    show_default=True,
    type=click.IntRange(450, 1619),
    help="How many frames of the sample drive to replay, from frame 180 (at least 450: "
    "the story needs a clean stretch, the attack and the degraded model).",
)
@click.option("--keep-stack", is_flag=True, help="Leave Kafka and Redis running afterwards.")
def demo(frames: int, keep_stack: bool) -> None:
    """Run the monitor end to end on the local stack and report what happened."""
    from streams.demo import run_demo

    try:
        ok = run_demo(cli_settings(), frames=frames, keep_stack=keep_stack)
    except (StackError, AssetError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(0 if ok else 1)


for _command in (alerts, calibrate, data, evaluate, keys, models, monitors, quarantine, replay):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="secmlops")


if __name__ == "__main__":
    main()
