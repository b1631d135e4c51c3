"""``secmlops demo``: the monitor end to end on the local stack, narrated.

What it shows today: frames flow through a real Kafka broker into the
detector agent, every frame gets exactly one recorded outcome, and malformed
input is dead-lettered with its reason while the worker keeps running.
"""

from __future__ import annotations

import hashlib
import time

import click
import msgspec
import numpy as np

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader, Outcomes
from streams.settings import Settings
from streams.stack import Stack
from streams.worker import WorkerProcess

__all__ = ["run_demo"]

CAMERA = "demo-cam-1"


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


def run_demo(settings: Settings, *, frames: int = 120, keep_stack: bool = False) -> bool:
    """Run the demo; True when every frame got exactly one outcome."""
    stack = Stack(settings)
    _say(f"Starting the local stack (Kafka {settings.kafka_bootstrap}, Redis {settings.redis_url})")
    started = stack.up()
    worker = WorkerProcess(settings.state_dir / "demo-worker.log")
    try:
        _say("Starting a worker (detector agent: OpenCV HOG pedestrian detector)")
        worker.start()
        with OutcomeReader(settings) as reader, FrameSender(settings) as sender:
            _say(f"Sending {frames} frames from camera {CAMERA}, plus two bad records")
            ids = set()
            for seq in range(frames):
                frame = build_frame(CAMERA, seq, pattern_frame(seq, width=320, height=240))
                sender.send(frame)
                ids.add(frame.frame_id)
            garbage = b"\x93this is not a frame"
            corrupt = msgspec.structs.replace(
                build_frame(CAMERA, frames, pattern_frame(frames)), image=b"\xff\xd8 truncated jpeg"
            )
            sender.send_raw(CAMERA.encode(), garbage)
            sender.send(corrupt)
            ids.add(corrupt.frame_id)
            sender.flush()
            _say("Waiting for every frame's outcome (the worker's first start takes a few s)")
            outcomes = reader.wait(
                ids,
                dead_letter_hashes={hashlib.sha256(garbage).hexdigest()},
                timeout_s=120,
                progress=True,
            )
        time.sleep(0.5)
        _say("Result")
        ok = _report(frames + 2, outcomes, worker.running)
        if not ok:
            click.echo(f"worker log tail:\n{worker.log_tail()}")
        return ok
    finally:
        worker.stop()
        if keep_stack:
            click.echo("\nThe stack is still running; stop it with 'make down'.")
        elif any(started.values()):
            stack.down()
