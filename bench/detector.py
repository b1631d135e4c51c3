"""Detector benchmark: the bare model against the same model inside the streaming pipeline.

Measured side by side in one run, for each registered architecture:

* **bare**: decode the JPEG frames and run ``detect_batch`` in batches of the
  worker's batch size, nothing else running;
* **pipeline**: the same signed frames sent to ``pds.frames`` on a private stack
  (broker and Redis on the same machine), a ``secmlops worker`` serving that
  version; throughput from the end of its first batch to the end of its last
  (predictions carry their completion time), so the sender's burst and the
  first fetch are not counted against it.

Target on the CPU: pipeline >= 0.85 of bare.  With ``--device cuda`` the bare
model decodes on the device and runs in fp16, as the worker's device path does;
``--preload`` fills the topic before the worker starts, so that the worker, not
one Python sender, is what is measured (a GPU outruns the sender).
``--in-flight 1,2`` runs the worker with each number of detector batches in
flight, side by side (``SECMLOPS_WORKER_IN_FLIGHT``); ``--lanes 1,2`` does the
same for the CPU lanes (``SECMLOPS_WORKER_CPU_LANES``), each with bare runs of
its own.
``--monitors all`` runs every monitor agent beside the detector and counts the
pipeline from the first batch any agent finished to the last monitor signal (the
signals' own stamps); its CPU figures cover the same window; ``bench/gpu_detector.py``
sweeps batch sizes and precisions of the bare model.

Run: ``python bench/detector.py`` (``make bench`` runs it).  Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rates import paired  # a sibling: bench/ is first on sys.path

from detectors.imaging import decode_image, decode_jpegs, encode_jpeg
from detectors.models.base import Detector, warm_up
from detectors.monitors.registry import select
from model_store.catalog import build_detector
from model_store.registry import Registry
from model_store.setup import setup_models
from model_store.signing import Verifier, throwaway_keys
from producers.frames import FrameSender, build_frame
from producers.sources import open_source
from streams.agents.detect import CPU_BATCH_PART
from streams.allocator import tune_allocator
from streams.assets import ASSETS, fetch_asset
from streams.checkpoints import forget_cameras
from streams.clients import redis_client, tail
from streams.cpu_lanes import CpuLanes, usable_cores
from streams.events import decode, signals_in
from streams.outcome_reader import OutcomeReader
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack, ephemeral_env
from streams.threads import CpuSampler
from streams.topics import TOPICS
from streams.worker import WorkerProcess

_T0 = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, with seconds since start: a run cut short by a time limit (the
    GPU suite's steps) still tells where its time went."""
    print(f"[{time.monotonic() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


def bare(
    detector: Detector, jpegs: list[bytes], batch: int, device: str = "cpu", lanes: int = 1
) -> float:
    """Frames/s of the model alone.  On a CPU with ``lanes`` > 1 each batch runs as the
    worker runs it then (:mod:`streams.cpu_lanes`): in parts, side by side, one torch
    thread each; with 1, whole, on torch's own threads (one per core)."""
    on_device = device.startswith("cuda") and hasattr(detector, "detect_tensors")
    runner = CpuLanes(lanes, name="bench-lane") if lanes > 1 and not on_device else None
    if runner is None and not on_device:
        import torch

        torch.set_num_threads(usable_cores())  # a lanes run before may have set 1
    t0 = time.perf_counter()
    for i in range(0, len(jpegs), batch):
        chunk = jpegs[i : i + batch]
        if on_device:  # the worker's device path: nvJPEG decode, fp16, one copy back
            detector.detect_tensors(decode_jpegs(chunk, [(640, 360)] * len(chunk), device))
        else:
            images = [decode_image(j, width=640, height=360) for j in chunk]
            if runner is None:
                detector.detect_batch(images)
            else:
                runner.run(detector.detect_batch, images, CPU_BATCH_PART)
    rate = len(jpegs) / (time.perf_counter() - t0)
    if runner is not None:
        runner.shutdown()
    return rate


def pipeline(
    settings: Settings,
    keyring: Keyring,
    jpegs: list[bytes],
    log: Path,
    *,
    preload: bool,
    in_flight: int | None = None,
    lanes: int | None = None,
) -> tuple[float, dict[str, float]]:
    """Steady frames/s of a worker on ``jpegs``, and its CPU ms per frame by thread over the
    same window (:class:`streams.threads.CpuSampler`)."""
    frames = [build_frame("bench", i, _blank()) for i in range(len(jpegs))]
    monitors = len(select(settings.monitors))
    forget_cameras(redis_client(settings), ["bench"])  # each run starts fresh
    env = {"SECMLOPS_WORKER_IN_FLIGHT": str(in_flight)} if in_flight else {}
    if lanes:
        env["SECMLOPS_WORKER_CPU_LANES"] = str(lanes)
    worker = WorkerProcess(log, env=env)
    # Readings start before the worker does (they begin once its web port answers): a worker
    # can finish a preloaded backlog before it is ready, since its warm-up frame may queue
    # behind the backlog on the same partition.
    sampler = CpuSampler(worker).start()
    with (
        OutcomeReader(settings) as reader,
        SignalCounter(settings) as signals,
        FrameSender(settings, keyring) as sender,
    ):
        try:
            if not preload:
                _start(worker, settings)
            ids = set()
            for frame, jpeg in zip(frames, jpegs, strict=True):
                ids.add(sender.send(_with_image(frame, jpeg)).frame_id)
            sender.flush()
            if preload:
                _start(worker, settings)
            outcomes = reader.wait(ids, timeout_s=1800)
            if len(outcomes.predictions) != len(jpegs):
                raise RuntimeError(
                    f"{len(outcomes.predictions)} of {len(jpegs)} predicted:\n{worker.log_tail()}"
                )
            done = [p.processed_ts_ns for p in outcomes.predictions.values()]
            start, end = min(done), max(done)
            if monitors:
                first, last = signals.wait(ids, monitors * len(ids), timeout_s=1800)
                start, end = min(start, first), max(end, last)
        finally:
            sampler.stop()
            worker.stop()
    rate = _steady_rate(done, start, end)
    stamps = [t // 1_000_000 for t in done]
    if monitors:  # from the first batch any agent finished to the last signal
        cpu = sampler.per_frame(stamps, since_ms=start / 1e6, until_ms=end / 1e6)
    else:
        cpu = sampler.per_frame(stamps)
    shown = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
    depth = in_flight or "default"
    say(
        f"pipeline ({depth} in flight, lanes {lanes or 'default'}): {rate:.1f} frames/s; "
        f"CPU ms/frame: {shown}"
    )
    return rate, cpu


def _start(worker: WorkerProcess, settings: Settings) -> None:
    t0 = time.monotonic()
    worker.start().wait_ready(settings)
    say(f"worker ready in {time.monotonic() - t0:.1f} s")


class SignalCounter:
    """Counts monitor signals for given frames on ``pds.signals``, from its current end."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = tail(settings, TOPICS.signals, client_id="secmlops-bench-signals")

    def wait(self, frame_ids: set[str], expected: int, timeout_s: float) -> tuple[int, int]:
        """When the worker made the first and the last of the ``expected`` signals of
        ``frame_ids`` (wall-clock ns, the signals' own stamps), once they all arrived."""
        count, first, last = 0, None, None
        deadline = time.monotonic() + timeout_s
        while count < expected and time.monotonic() < deadline:
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    for signal in signals_in(decode(record.value)):
                        if signal.frame_id in frame_ids:
                            count += 1
                            first = signal.ts_ns if first is None else min(first, signal.ts_ns)
                            last = signal.ts_ns if last is None else max(last, signal.ts_ns)
        if count < expected or first is None or last is None:
            raise RuntimeError(f"{count} of {expected} monitor signals arrived")
        return first, last

    def __enter__(self) -> SignalCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.close()


def _steady_rate(done_ns: list[int], start_ns: int, end_ns: int) -> float:
    """Frames per second after the first batch: the sender's burst and the first fetch excluded.

    Predictions of one batch share a completion time, so the rate counts the
    frames predicted after the first batch any agent finished (``start_ns``)
    up to ``end_ns``: the last prediction, or the last monitor signal when
    monitors run.  With monitors, ``start_ns`` is the earlier of the
    detector's first batch and the first signal: on a backlog the image
    monitors run ahead of the model, and a window from the model's first
    batch left their head start out (docs/benchmark-log.md, "Gate cost", the
    sixteenth run).
    """
    later = [t for t in done_ns if t > start_ns + 1_000_000]
    if len({t // 1_000_000 for t in later}) < 2 or end_ns <= start_ns:  # one batch or less
        return float("nan")
    return len(later) / ((end_ns - start_ns) / 1e9)


def _blank():
    import numpy as np

    return np.zeros((360, 640, 3), np.uint8)


def _with_image(frame, jpeg: bytes):
    import msgspec

    return msgspec.structs.replace(frame, image=jpeg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", default="hog,ssdlite", help="which of hog, ssdlite")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--batch",
        default="",
        help="comma-separated worker batch sizes, each its own rows (default: the worker's)",
    )
    parser.add_argument(
        "--precision",
        default="",
        help="comma-separated fp16,fp32 on cuda, each its own rows (default: fp16 on cuda, "
        "fp32 on a CPU)",
    )
    parser.add_argument(
        "--monitors", default="none", help="SECMLOPS_MONITORS for the worker (default none)"
    )
    parser.add_argument(
        "--preload", action="store_true", help="send every frame before the worker starts"
    )
    parser.add_argument(
        "--in-flight",
        default="",
        help="comma-separated SECMLOPS_WORKER_IN_FLIGHT values, each run as its own pipeline "
        "row beside the same bare runs (default: the worker's default only)",
    )
    parser.add_argument(
        "--lanes",
        default="",
        help="comma-separated SECMLOPS_WORKER_CPU_LANES values (CPU only), each its own bare "
        "and pipeline rows (default: the worker's default only; 1 runs batches whole in the "
        "bare model, on torch's own threads)",
    )
    args = parser.parse_args()
    depths: list[int | None] = [int(d) for d in args.in_flight.split(",") if d] or [None]
    lane_counts: list[int | None] = [int(n) for n in args.lanes.split(",") if n] or [None]
    if args.device.startswith("cuda") and args.lanes:
        parser.error("--lanes applies to the CPU only")
    cuda = args.device.startswith("cuda")
    precisions = [p for p in args.precision.split(",") if p] or ["fp16" if cuda else "fp32"]
    if not set(precisions) <= {"fp16", "fp32"} or ("fp16" in precisions and not cuda):
        parser.error("--precision takes fp16 (cuda only) and fp32")

    base = Settings.from_env()
    # The bare model gets the allocator set-up every secmlops command, the worker included,
    # gets (SECMLOPS_TUNE_MALLOC).
    say(f"allocator tuned: {tune_allocator(base.tune_malloc)}")
    sizes = [int(b) for b in args.batch.split(",") if b] or [base.worker_batch_size]
    drive = fetch_asset(ASSETS["sample-drive"], base.cache_dir, quiet=True)
    jpegs = [encode_jpeg(f.image, 90) for f in open_source(drive, "b", end=args.frames).frames()]
    jpegs = (jpegs * (args.frames // len(jpegs) + 1))[: args.frames]  # longer than the drive
    keys = {**throwaway_keys(), "SECMLOPS_DEVICE": args.device, "SECMLOPS_MONITORS": args.monitors}
    rows = []
    with tempfile.TemporaryDirectory(prefix="secmlops-bench-") as tmp:
        env = {**ephemeral_env(Path(tmp)), **keys}
        os.environ.update(env)  # the worker processes inherit it
        settings = Settings.from_env()
        stack = Stack(settings)
        stack.up(progress=False)
        say("stack up")
        try:
            list(setup_models(settings, which=args.models.split(",")))
            say("models registered")
            registry = Registry(redis_client(settings), Verifier.from_settings(settings))
            keyring = Keyring.from_settings(settings)
            for info in registry.versions(settings.model_name):
                registry.promote(settings.model_name, info.version, actor="bench", reason="bench")
                for batch in sizes:
                    for precision in precisions:
                        half = precision == "fp16"
                        os.environ["SECMLOPS_WORKER_BATCH_SIZE"] = str(batch)
                        os.environ["SECMLOPS_HALF"] = "1" if half else "0"
                        label = info.architecture
                        if len(sizes) > 1 or len(precisions) > 1:
                            label += f", batch {batch}, {precision}"
                        rows += measure(
                            args,
                            settings,
                            keyring,
                            registry,
                            info,
                            jpegs,
                            batch,
                            half,
                            depths,
                            lane_counts,
                            label,
                            Path(tmp),
                        )
        finally:
            stack.down()
    report(args, rows)


def measure(
    args: argparse.Namespace,
    settings: Settings,
    keyring: Keyring,
    registry: Registry,
    info: Any,
    jpegs: list[bytes],
    batch: int,
    half: bool,
    depths: list[int | None],
    lane_counts: list[int | None],
    label: str,
    tmp: Path,
) -> list[tuple[str, list[float], list[float], list[dict[str, float]]]]:
    """Bare and pipeline runs of one version at one batch size and precision: its rows, one
    per number of lanes and batches in flight (each against the bare runs of its lanes)."""
    detector = build_detector(
        registry.artifact(settings.model_name, info.version),
        registry.verifier,
        version=info.version,
        device=args.device,
        half=half,
        max_batch=batch if args.device.startswith("cuda") else None,  # as a GPU worker's
    )
    say(f"{label}: warm-up {warm_up(detector):.1f} s")  # every batch shape, as a worker
    bare(detector, jpegs[:batch], batch, args.device)
    default_lanes = settings.worker_cpu_lanes or usable_cores()
    b: dict[int | None, list[float]] = {lanes: [] for lanes in lane_counts}
    p: dict[tuple, list[float]] = {(n, d): [] for n in lane_counts for d in depths}
    cpu: dict[tuple, list[dict[str, float]]] = {key: [] for key in p}
    for _ in range(args.repeats):
        for lanes in lane_counts:
            b[lanes].append(bare(detector, jpegs, batch, args.device, lanes or default_lanes))
            say(f"bare, lanes {lanes or default_lanes}: {b[lanes][-1]:.1f} frames/s")
            for depth in depths:
                rate, used = pipeline(
                    settings,
                    keyring,
                    jpegs,
                    tmp / "worker.log",
                    preload=args.preload,
                    in_flight=depth,
                    lanes=lanes,
                )
                p[lanes, depth].append(rate)
                cpu[lanes, depth].append(used)
    rows = []
    for lanes, depth in p:
        name = label + (f", {lanes} lane{'s' if lanes > 1 else ''}" if lanes else "")
        name += f", {depth} in flight" if depth else ""
        rows.append((name, b[lanes], p[lanes, depth], cpu[lanes, depth]))
    return rows


def report(args: argparse.Namespace, rows: list) -> None:
    import torch

    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lanes = Settings.from_env().worker_cpu_lanes or usable_cores()
    threads = (
        f"default lanes {lanes}" if card == "CPU" else f"{torch.get_num_threads()} torch threads"
    )
    batches = args.batch or str(Settings.from_env().worker_batch_size)
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{card} ({threads}); {args.frames} frames of the sample drive, 640x360 JPEG q90, "
        f"batch {batches}, monitors: {args.monitors}, "
        f"{'topic preloaded' if args.preload else 'sent while the worker runs'}, "
        f"{args.repeats} repeats\n"
    )
    print("| model | bare frames/s | pipeline frames/s | pipeline / bare |\n|---|---|---|---|")
    for arch, b, p, _ in rows:
        ratio, _, spread = paired(p, b).partition(" ")
        print(
            f"| {arch} | {statistics.median(b):.1f} | {statistics.median(p):.1f} "
            f"| **{ratio}**{' ' + spread if spread else ''} (target ≥ 0.85) |"
        )
    print(
        "\nFrames/s: medians of the runs. Ratio: the median of the paired ratios (each "
        "pipeline run against the bare run of the same repeat; range in brackets)."
    )
    groups = sorted({g for *_, cpu in rows for used in cpu for g in used})
    if groups:  # what bounds a worker that keeps up with its model: see docs/operations.md
        print("\nWorker CPU per frame by thread, ms (median of the runs; `/threads/`):\n")
        print(f"| pipeline | {' | '.join(groups)} |\n|---|{'---|' * len(groups)}")
        for arch, _, _, cpu in rows:
            cells = [statistics.median([u.get(g, 0.0) for u in cpu if u] or [0.0]) for g in groups]
            print(f"| {arch} | {' | '.join(f'{c:.2f}' for c in cells)} |")


if __name__ == "__main__":
    main()
