"""Check wait: how long a monitor's model check waits behind the detector's CPU batches.

Feature squeezing runs its model in the detector's device thread, in the lane
that goes ahead of the queued batches (``streams.device_thread``).  Under a
backlog the detector's batches are full (``SECMLOPS_WORKER_BATCH_SIZE``, 32
frames) and a check waits for the batch in progress; run in parts
(``CPU_BATCH_PART`` frames, what the worker does on a CPU, side by side on its
CPU lanes, ``streams.cpu_lanes``), it waits for one part.  The gate's deadline
is 5 s, so that wait decides whether a clean frame is held as
``missing/adversarial.squeeze``.

Measured side by side in one run, for each model, whole batches and parts
alternating: the detector's batches through ``predict_batch`` (JPEG frame
records decoded and run; two batches always queued, as
``SECMLOPS_WORKER_IN_FLIGHT``), and beside them a thread that submits a check
(the model on two images, as squeezing's two squeezed copies) once per
``--frames-per-check`` frames of the model's bare rate, on average, whether or
not the last one ran (the same checks in both modes; squeezing's budget and
sampling check about one frame in 17).  Reported:
the detector's frames/s, and each check's wait from submitted to started.

Run: ``python bench/check_wait.py`` (``make bench`` runs it).  Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

import cv2
import numpy as np
import torch
from monitor_cost import detector, frames  # siblings: bench/ is first on sys.path

from producers.frames import encoded_frame
from streams.agents.detect import CPU_BATCH_PART
from streams.allocator import tune_allocator
from streams.cpu_lanes import CpuLanes, usable_cores
from streams.device_thread import DeviceThread, let_ahead
from streams.events import encode
from streams.inference import predict_batch
from streams.settings import Settings

IN_FLIGHT = 2  # detector batches queued at once (SECMLOPS_WORKER_IN_FLIGHT's default)


def bare_rate(model: Any, payloads: list[bytes]) -> float:
    """Frames/s of one whole batch after a warm-up batch, nothing beside it."""
    batch = payloads[: Settings.from_env().worker_batch_size]
    predict_batch(model, batch, [0] * len(batch))
    start = time.perf_counter()
    predict_batch(model, batch, [0] * len(batch))
    return len(batch) / (time.perf_counter() - start)


def measure(
    model: Any,
    payloads: list[bytes],
    images: list[np.ndarray],
    part: int,
    seconds: float,
    every_s: float,
    lane_count: int,
) -> tuple[float, list[float]]:
    """The detector's frames/s with batches always queued, and each check's wait (s)."""
    device = DeviceThread("bench-device")
    batch = Settings.from_env().worker_batch_size
    rng = np.random.default_rng(part)
    waits: list[float] = []
    stop = threading.Event()

    # Parts run side by side on the worker's CPU lanes; whole batches on torch's own threads.
    lanes = CpuLanes(lane_count if part else 1, name="bench-lane")
    if not part:
        torch.set_num_threads(usable_cores())  # a parts run before may have set 1
    device.batches.submit(lanes.claim_thread).result()

    def one_batch(chunk: list[bytes]) -> int:
        options: dict[str, Any] = {"part": part, "between": let_ahead, "lanes": lanes}
        return len(predict_batch(model, chunk, [0] * len(chunk), **(options if part else {})))

    def check(submitted: float, started: list[float]) -> None:
        started.append(time.perf_counter() - submitted)
        model.detect_batch(images[:2])

    checks: list[tuple[Future, list[float]]] = []

    def checker() -> None:  # open loop: the same checks whatever they wait
        while not stop.wait(rng.uniform(0.5, 1.5) * every_s):
            started: list[float] = []
            checks.append((device.checks.submit(check, time.perf_counter(), started), started))

    queued: deque = deque()
    offset = 0

    def submit() -> None:
        nonlocal offset
        chunk = [payloads[(offset + i) % len(payloads)] for i in range(batch)]
        offset += batch
        queued.append(device.batches.submit(one_batch, chunk))

    for _ in range(IN_FLIGHT):
        submit()
    queued.popleft().result()  # the first batch warms up; the clock starts after it
    submit()
    helper = threading.Thread(target=checker, daemon=True)
    helper.start()
    start = time.perf_counter()
    done = 0
    end = start
    while end - start < seconds:
        done += queued.popleft().result()
        end = time.perf_counter()
        submit()
    stop.set()
    helper.join()
    for future in queued:
        future.result()
    for future, started in checks:
        future.result()
        waits.append(started[0])
    device.shutdown()
    lanes.shutdown()
    return done / (end - start), waits


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ssdlite,hog", help="comma-separated: ssdlite, hog")
    parser.add_argument("--frames", type=int, default=64, help="distinct frames, cycled")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--frames-per-check", type=float, default=16.0, help="check rate")
    parser.add_argument(
        "--parts",
        default=f"0,{CPU_BATCH_PART}",
        help="comma-separated frames per part to compare (0: the whole batch)",
    )
    args = parser.parse_args()
    tune_allocator()
    jpegs = frames(args.frames)
    images = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    payloads = [
        encode(encoded_frame("bench", n, j, width=i.shape[1], height=i.shape[0]))
        for n, (j, i) in enumerate(zip(jpegs, images, strict=True))
    ]
    parts = [int(p) for p in args.parts.split(",")]
    lane_count = Settings.from_env().worker_cpu_lanes or usable_cores()
    modes = {(f"parts of {p}, {lane_count} lanes" if p else "whole batch"): p for p in parts}
    print(f"Check wait, {platform.processor() or platform.machine()}, {os.cpu_count()} cores,")
    print(f"batches of {Settings.from_env().worker_batch_size}, {args.seconds:g} s a run:\n")
    print("| model | batches | runs: detector frames/s | checks | wait p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.models.split(","):
        model = detector(kind, "cpu")
        every_s = args.frames_per_check / bare_rate(model, payloads)
        results: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in modes}
        for _ in range(args.repeats):
            for name, part in modes.items():
                rate, waits = measure(
                    model, payloads, images, part, args.seconds, every_s, lane_count
                )
                results[name][0].append(rate)
                results[name][1].extend(waits)
        for name, (rates, waits) in results.items():
            ms = [1000 * w for w in waits]
            print(
                f"| {kind} | {name} | {', '.join(f'{r:.1f}' for r in rates)} "
                f"(median {statistics.median(rates):.1f}) | {len(ms)} | {pct(ms, 0.5):.0f} "
                f"| {pct(ms, 0.99):.0f} | {max(ms, default=float('nan')):.0f} |"
            )


if __name__ == "__main__":
    main()
