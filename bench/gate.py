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
its capture time (p50, p99).  **Throughput**: the worker is started and warmed
up, then ``--frames`` frames, encoded beforehand, are sent as fast as the
producer goes; frames/s from the first frame sent to the last outcome
(:func:`drain_rate`: every agent's work on every frame, including the image
monitors', which run ahead of the detector on a backlog), ``--repeats`` runs
per configuration made in alternating order (ABCD, DCBA, ...).  The shared
machine's speed drifts by up to 1.7× over minutes (the same detector-only
run: 55 and 89 frames/s in one session), so a ratio is the median of
*paired* ratios: each run against the first configuration's run of the same
repeat.

Where the time goes, over the same window: the workers' CPU by thread
(``/threads/``), their device threads' busy time by lane, detector batches
against monitors' checks (``/device/``; on a CPU the device thread bounds the
rate, so the checks' share is squeezing's cost), and the CPU of the broker
and Redis, which share this machine's cores with the workers.

The monitors are calibrated first, as ``secmlops calibrate`` would on a
deployment (frames 0-299 of the drive; the measured frames come after):
an uncalibrated monitor's cost is not the one an operator pays.

``--workers N`` runs each configuration as N worker processes in one consumer
group (1 to 4, the camera partitions), as a GPU host would: issue 7 expects
several processes to share one card.

Run: ``python bench/gate.py`` (``make bench`` runs it).  Prints Markdown.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rates import drain_rate, paired, steady_rate  # a sibling: bench/ is first on sys.path

from detectors.imaging import encode_jpeg
from model_store.registry import Registry
from model_store.setup import setup_models
from model_store.signing import Verifier, throwaway_keys
from producers.frames import FrameSender, build_frame, encoded_frame
from producers.sources import open_source
from streams.assets import ASSETS, fetch_asset
from streams.calibration import calibrate_served
from streams.checkpoints import forget_cameras
from streams.clients import redis_client, tail
from streams.events import InvalidEvent, decode
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack, ephemeral_env
from streams.threads import CpuSampler, process_cpu_seconds
from streams.topics import TOPICS, camera_per_partition
from streams.worker import WorkerGroup, WorkerProcess

#: Frames 0-299 of the drive calibrate the monitors; the measured frames come after them.
CALIBRATION_FRAMES = 300

#: Short name: (row label, worker environment).
CONFIGS = {
    "detector": ("detector only", {"SECMLOPS_MONITORS": "none", "SECMLOPS_GATE": "0"}),
    "gate": ("+ gate, no monitors", {"SECMLOPS_MONITORS": "none", "SECMLOPS_GATE": "1"}),
    "monitors": ("monitors, no gate", {"SECMLOPS_MONITORS": "all", "SECMLOPS_GATE": "0"}),
    "full": ("monitors + gate", {"SECMLOPS_MONITORS": "all", "SECMLOPS_GATE": "1"}),
    # The same two on one CPU lane (batches' parts in turn on torch's own threads, as
    # before streams.cpu_lanes), for a side-by-side; not in the default run.
    "detector1": (
        "detector only, one CPU lane",
        {"SECMLOPS_MONITORS": "none", "SECMLOPS_GATE": "0", "SECMLOPS_WORKER_CPU_LANES": "1"},
    ),
    "full1": (
        "monitors + gate, one CPU lane",
        {"SECMLOPS_MONITORS": "all", "SECMLOPS_GATE": "1", "SECMLOPS_WORKER_CPU_LANES": "1"},
    ),
}

DEFAULT_CONFIGS = "detector,gate,monitors,full"


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


def cameras(prefix: str, workers: int) -> list[str]:
    """One camera for one worker; with several, one camera per partition, so that the
    frames spread evenly over the partitions and so over the workers."""
    return [prefix] if workers == 1 else camera_per_partition(prefix)


def start_workers(settings: Settings, env: dict, log: Path, workers: int) -> Any:
    """A ready worker (or group of ``workers``): joined, model loaded, every partition served."""
    group = WorkerProcess(log, env=env) if workers == 1 else WorkerGroup(workers, log.parent, env)
    group.start().wait_ready(settings)
    return group


def throughput(
    settings: Settings,
    keyring: Keyring,
    jpegs: list[bytes],
    size: tuple[int, int],
    env: dict,
    log: Path,
    workers: int = 1,
    stack_pids: dict[str, int | None] | None = None,
) -> tuple[tuple[float, float], dict[str, float], dict[str, float]]:
    """(drain, steady) frames/s of one configuration on a backlog of ``jpegs``, the
    workers' CPU ms per frame by thread, and (third) their device threads' busy ms per
    frame by lane (``batches``, ``checks``) and the CPU ms per frame of the stack's
    processes (``stack_pids``: the broker, Redis), from the first frame sent to the
    last outcome.

    The workers are started and warmed up first (a worker joining mid-run pauses the
    others; a cold one loads its model on the clock).  The backlog, encoded
    beforehand, is then sent as fast as the producer goes (its rate is logged: far
    above the workers', so that they, not the sender, are measured).
    """
    names = cameras("bench-tput", workers)
    forget_cameras(redis_client(settings), names)  # each run starts fresh
    group = None
    stack = {"stack": lambda: process_cpu_seconds(stack_pids or {})}
    try:
        outcomes = Outcomes(settings, env["SECMLOPS_GATE"] == "1")
        group = start_workers(settings, env, log, workers)
        sampler = CpuSampler(group, extras={"device": group.device_busy, **stack}).start()
        time.sleep(2 * sampler.every_s)  # a reading before the first frame
        sent_ms, t0 = time.time() * 1000, time.monotonic()
        with FrameSender(settings, keyring) as sender:
            ids = {
                sender.send(
                    encoded_frame(
                        names[i % len(names)], i // len(names), data, width=size[0], height=size[1]
                    )
                ).frame_id
                for i, data in enumerate(jpegs)
            }
        sent = len(jpegs) / (time.monotonic() - t0)
        print(f"  sender: {sent:.0f} frames/s", file=sys.stderr, flush=True)
        try:
            stamps = list(outcomes.wait(ids).values())
            time.sleep(2 * sampler.every_s)  # a reading after the last outcome
        finally:
            sampler.stop()
        more = {
            **sampler.device_per_frame(stamps, sent_ms),
            **sampler.extra_per_frame("stack", stamps, sent_ms),
        }
        rates = drain_rate(stamps, sent_ms), steady_rate(stamps)
        return rates, sampler.per_frame(stamps, sent_ms), more
    finally:
        if group is not None:
            group.stop()


def latency(
    settings: Settings,
    keyring: Keyring,
    images: list,
    env: dict,
    fps: float,
    log: Path,
    workers: int = 1,
) -> tuple[float, float]:
    """(p50, p99) ms from capture to outcome of a steady stream the workers keep up with
    (``fps`` in all, spread over the cameras)."""
    names = cameras("bench-lat", workers)
    forget_cameras(redis_client(settings), names)  # each run starts fresh
    group = start_workers(settings, env, log, workers)
    try:
        outcomes = Outcomes(settings, env["SECMLOPS_GATE"] == "1")
        captured: dict[str, int] = {}
        start = time.monotonic()
        with FrameSender(settings, keyring) as sender:
            for i, image in enumerate(images):
                time.sleep(max(0.0, start + i / fps - time.monotonic()))
                camera = names[i % len(names)]
                frame = sender.send(build_frame(camera, i // len(names), image))
                captured[frame.frame_id] = frame.capture_ts_ns
        seen = outcomes.wait(set(captured))
        p50, p99 = np.percentile([seen[f] - captured[f] / 1e6 for f in captured], [50, 99])
        return float(p50), float(p99)
    finally:
        group.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="backlog of each throughput run")
    parser.add_argument("--latency-frames", type=int, default=200)
    parser.add_argument("--fps", type=float, default=10.0, help="pace of the latency stream")
    parser.add_argument("--size", default="424x240")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (fp16 on cuda)")
    parser.add_argument("--batch", type=int, default=None, help="worker batch size")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the machine (and its GPU), 1 to 4 (default 1)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="throughput runs per configuration, in alternating order (default 3)",
    )
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="comma-separated configurations to run, the first is the ratios' base "
        f"(default: {DEFAULT_CONFIGS}; known: {','.join(CONFIGS)})",
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CONFIGS))
    if not names or unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {list(CONFIGS)}")
    size = tuple(int(v) for v in args.size.split("x"))
    drive = fetch_asset(ASSETS["sample-drive"], Settings.from_env().cache_dir, quiet=True)
    first = CALIBRATION_FRAMES
    images = [
        f.image
        for f in open_source(drive, "b", start=first, end=first + args.frames, resize=size).frames()
    ]
    jpegs = [encode_jpeg(image) for image in images]  # once: the sender only sends
    import torch

    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU only"
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {card}; SSDLite, "
        f"{args.size} JPEG q90 frames of the sample drive; latency at {args.fps:g} frames/s "
        f"({args.latency_frames} frames), throughput from a backlog of {args.frames} frames; "
        + (
            "one worker\n"
            if args.workers == 1
            else f"{args.workers} worker processes, frames spread over one camera per "
            "partition, sent once the group is ready (sender's rate on stderr)\n"
        )
    )
    with tempfile.TemporaryDirectory(prefix="secmlops-bench-") as tmp:
        os.environ.update({**ephemeral_env(Path(tmp)), **throwaway_keys()})
        settings = Settings.from_env()
        stack = Stack(settings)
        stack.up(progress=False)
        # Their CPU too: on one machine, every record the monitors add is the broker's work.
        stack_pids = {
            "broker": stack.kafka.proc.pid(),
            "Redis": stack.redis.proc.pid(),
            "bench": os.getpid(),  # this process: the outcome reader, the sampler
        }
        try:
            list(setup_models(settings, which=["ssdlite"]))
            # Calibrated monitors, as deployed (thresholds, squeezing's trigger), on frames
            # before the measured ones.
            registry = Registry(redis_client(settings), Verifier.from_settings(settings))
            clean = open_source(drive, "*", end=CALIBRATION_FRAMES, resize=size).frames()
            meta = {"sources": ["asset:sample-drive"], "actor": "bench"}
            calibrate_served(
                settings, registry, clean, total=CALIBRATION_FRAMES, meta=meta, progress=False
            )
            keyring = Keyring.from_settings(settings)
            envs = {}
            for name in names:
                envs[name] = {**CONFIGS[name][1], "SECMLOPS_DEVICE": args.device}
                if args.batch:
                    envs[name]["SECMLOPS_WORKER_BATCH_SIZE"] = str(args.batch)
            log = Path(tmp) / "worker.log"
            latencies = {}
            for name in names:
                lat = images[: args.latency_frames]
                latencies[name] = latency(
                    settings, keyring, lat, envs[name], args.fps, log, args.workers
                )
                print(f"  {name}: latency p50/p99 {latencies[name]}", file=sys.stderr, flush=True)
            rates: dict[str, list[float]] = {name: [] for name in names}
            steady: dict[str, list[float]] = {name: [] for name in names}
            cpu: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            busy: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for repeat in range(args.repeats):  # ABCD DCBA ...: no configuration always first
                for name in names if repeat % 2 == 0 else names[::-1]:
                    (rate, steady_one), used, lanes = throughput(
                        settings, keyring, jpegs, size, envs[name], log, args.workers, stack_pids
                    )
                    rates[name].append(rate)
                    steady[name].append(steady_one)
                    cpu[name].append(used)
                    busy[name].append(lanes)
                    print(
                        f"  {name}: {rate:.1f} frames/s (steady window {steady_one:.1f}), "
                        f"CPU {used}, device and stack {lanes}",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            stack.down()
    print(
        "| configuration | capture→outcome p50 ms | p99 ms | frames/s | cameras at 30 fps "
        "| vs detector only | steady window, vs detector only |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        (p50, p99), rate = latencies[name], float(np.median(rates[name]))
        # Paired ratios: each repeat's run against the base's run of the same repeat, so
        # that a slow or fast spell of the shared machine moves both sides of a ratio.
        ratio = paired(rates[name], rates[names[0]])
        print(
            f"| {CONFIGS[name][0]} | {p50:.0f} | {p99:.0f} | {rate:.1f} "
            f"| {rate / 30:.1f} | {ratio} | {paired(steady[name], steady[names[0]])} |"
        )
    print_cpu(names, cpu)
    print_device(names, busy)
    runs = "; ".join(f"{CONFIGS[n][0]}: " + ", ".join(f"{r:.1f}" for r in rates[n]) for n in names)
    print(
        f"\nThroughput: the whole backlog, from the first frame sent to the last outcome "
        f"(CPU and device figures over the same window), median of {args.repeats} runs per "
        f"configuration, made in alternating order. The ratio is the median of the paired "
        f"ratios (each run against the first row's run of the same repeat; range in "
        f"brackets). The last column is the same ratio over the outcomes' 10th to 90th "
        f"percentile only, the window of earlier runs. Runs, frames/s: {runs}."
    )


def print_cpu(names: list[str], cpu: dict[str, list[dict[str, float]]]) -> None:
    """The workers' CPU ms per frame by thread, median of the runs, one row a configuration."""
    columns = ["event loop", "detector thread", "unnamed (torch's)", "monitors", "gate", "other"]
    if not any(used for runs in cpu.values() for used in runs):
        print("\n(no per-thread CPU: the workers' /threads/ page could not be read)")
        return
    print("\nWorkers' CPU per frame by thread, ms (median of the runs):\n")
    print("| configuration | " + " | ".join(columns) + " | total |")
    print("|---" * (len(columns) + 2) + "|")
    for name in names:
        runs = [used for used in cpu[name] if used]
        if not runs:  # every run too short a burst to measure
            print(f"| {CONFIGS[name][0]} |" + " – |" * (len(columns) + 1))
            continue
        cells = [float(np.median([r.get(c, 0.0) for r in runs])) for c in columns]
        total = float(np.median([sum(r.values()) for r in runs]))
        row = " | ".join(f"{c:.1f}" for c in cells)
        print(f"| {CONFIGS[name][0]} | {row} | {total:.1f} |")


def print_device(names: list[str], busy: dict[str, list[dict[str, float]]]) -> None:
    """The device threads' busy ms per frame (the detector's batches, the monitors'
    checks: feature squeezing's second model runs) and the CPU ms per frame of the
    broker, Redis and this process (they share this machine's cores), median of runs."""
    columns = ["batches", "checks", "share", "broker", "Redis", "bench"]
    print("\nDevice thread busy, and the stack's CPU, ms per frame (median of the runs):\n")
    print(
        "| configuration | detector batches | monitors' checks | checks' share | broker CPU ",
        end="",
    )
    print("| Redis CPU | this bench's CPU |\n" + "|---" * 7 + "|")
    for name in names:
        runs = [{**r, "share": r["checks"] / (r["batches"] + r["checks"] or 1.0)}
                for r in busy[name] if "checks" in r and "batches" in r]  # fmt: skip
        cells = [float(np.median([r.get(c, math.nan) for r in runs])) if runs else math.nan
                 for c in columns]  # fmt: skip
        row = " | ".join("–" if math.isnan(v) else f"{v:.0%}" if c == "share" else f"{v:.2f}"
                         for c, v in zip(columns, cells, strict=True))  # fmt: skip
        print(f"| {CONFIGS[name][0]} | {row} |")


if __name__ == "__main__":
    main()
