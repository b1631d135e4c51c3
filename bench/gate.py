"""Gate cost: latency from capture to the consumer-visible outcome, and throughput, gate on vs off.

Four worker configurations, one after the other on one private stack, in one run:

* **detector only**: no monitors, no gate; consumers read ``pds.predictions``;
* **+ gate, no monitors**: the gate's own cost (every prediction is trusted at once);
* **monitors, no gate**: every monitor runs, but consumers still read
  ``pds.predictions`` (they do not wait for the monitors);
* **monitors + gate**: the full pipeline; consumers read ``pds.trusted``
  (or find the frame on ``pds.quarantine``).

**Latency**: frames are sent at a steady ``--fps`` (below the machine's
capacity, so that queues stay short), stamped with the wall clock at capture;
the latency of a frame is the broker timestamp of its outcome record minus
its capture time (p50, p99).  **Throughput**: ``--frames`` frames are loaded
into the topic first and the worker started after, so that the worker, not
the sender, is measured; frames/s from the first outcome to the last.

Run: ``python bench/gate.py`` (``make bench`` runs it).  Prints Markdown.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from model_store.setup import setup_models
from model_store.signing import throwaway_keys
from producers.frames import FrameSender, build_frame
from producers.sources import open_source
from streams.assets import ASSETS, fetch_asset
from streams.clients import tail
from streams.events import InvalidEvent, decode
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack, ephemeral_env
from streams.topics import TOPICS
from streams.worker import WorkerProcess

CONFIGS = {
    "detector only": {"SECMLOPS_MONITORS": "none", "SECMLOPS_GATE": "0"},
    "+ gate, no monitors": {"SECMLOPS_MONITORS": "none", "SECMLOPS_GATE": "1"},
    "monitors, no gate": {"SECMLOPS_MONITORS": "all", "SECMLOPS_GATE": "0"},
    "monitors + gate": {"SECMLOPS_MONITORS": "all", "SECMLOPS_GATE": "1"},
}


class Outcomes:
    """Broker timestamps (ms) of the outcome records of given frames, from the topics' ends."""

    def __init__(self, settings: Settings, gate: bool) -> None:
        topics = [TOPICS.trusted, TOPICS.quarantine] if gate else [TOPICS.predictions]
        self._consumer = tail(settings, *topics, client_id="secmlops-bench-gate")

    def wait(self, frame_ids: set[str], timeout_s: float = 900.0) -> dict[str, int]:
        found: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(found) < len(frame_ids) and time.monotonic() < deadline:
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        event = decode(record.value)
                    except InvalidEvent:
                        continue
                    if getattr(event, "frame_id", None) in frame_ids:
                        found.setdefault(event.frame_id, record.timestamp)
        if len(found) < len(frame_ids):
            raise RuntimeError(f"{len(found)} of {len(frame_ids)} outcomes arrived")
        self._consumer.close()
        return found


def run(settings: Settings, keyring: Keyring, images: list, env: dict, args, log: Path):
    """(p50 ms, p99 ms, frames/s) for one worker configuration."""
    gate = env["SECMLOPS_GATE"] == "1"
    worker = WorkerProcess(log, env=env)
    try:
        # Throughput: the backlog first, then the worker.
        outcomes = Outcomes(settings, gate)
        with FrameSender(settings, keyring) as sender:
            ids = {
                sender.send(build_frame("bench-tput", i, im)).frame_id
                for i, im in enumerate(images)
            }
        worker.start().wait_ready(settings)
        stamps = sorted(outcomes.wait(ids).values())
        # Outcomes of one batch share a time: fewer than three batches give no rate.
        batches = len(set(stamps))
        rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000) if batches >= 3 else math.nan
        # Latency: a steady stream the worker keeps up with.
        outcomes = Outcomes(settings, gate)
        captured: dict[str, int] = {}
        start = time.monotonic()
        with FrameSender(settings, keyring) as sender:
            for i, image in enumerate(images[: args.latency_frames]):
                time.sleep(max(0.0, start + i / args.fps - time.monotonic()))
                frame = sender.send(build_frame("bench-lat", i, image))
                captured[frame.frame_id] = frame.capture_ts_ns
        seen = outcomes.wait(set(captured))
        latency = [seen[f] - captured[f] / 1e6 for f in captured]
        p50, p99 = np.percentile(latency, [50, 99])
        return p50, p99, rate
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=900, help="for throughput")
    parser.add_argument("--latency-frames", type=int, default=200)
    parser.add_argument("--fps", type=float, default=10.0, help="pace of the latency stream")
    parser.add_argument("--size", default="424x240")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (fp16 on cuda)")
    parser.add_argument("--batch", type=int, default=None, help="worker batch size")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    drive = fetch_asset(ASSETS["sample-drive"], Settings.from_env().cache_dir, quiet=True)
    images = [
        f.image
        for f in open_source(drive, "b", start=180, end=180 + args.frames, resize=size).frames()
    ]
    import torch

    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU only"
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {card}; SSDLite, "
        f"{args.size} JPEG q90 frames of the sample drive; latency at {args.fps:g} frames/s "
        f"({args.latency_frames} frames), throughput from a backlog of {args.frames} frames\n"
    )
    print(
        "| configuration | capture→outcome p50 ms | p99 ms | frames/s | cameras at 30 fps "
        "| vs detector only |"
    )
    print("|---|---|---|---|---|---|", flush=True)
    base = math.nan
    with tempfile.TemporaryDirectory(prefix="secmlops-bench-") as tmp:
        os.environ.update({**ephemeral_env(Path(tmp)), **throwaway_keys()})
        settings = Settings.from_env()
        stack = Stack(settings)
        stack.up(progress=False)
        try:
            list(setup_models(settings, which=["ssdlite"]))
            keyring = Keyring.from_settings(settings)
            for name, env in CONFIGS.items():  # each row as soon as it is measured
                env = {**env, "SECMLOPS_DEVICE": args.device}
                if args.batch:
                    env["SECMLOPS_WORKER_BATCH_SIZE"] = str(args.batch)
                p50, p99, rate = run(settings, keyring, images, env, args, Path(tmp) / "w.log")
                base = rate if name == next(iter(CONFIGS)) else base
                ratio = rate / base if base == base and rate == rate else math.nan  # nan: too few
                print(
                    f"| {name} | {p50:.0f} | {p99:.0f} | {rate:.1f} | {rate / 30:.1f} "
                    f"| {ratio:.2f} |",
                    flush=True,
                )
        finally:
            stack.down()


if __name__ == "__main__":
    main()
