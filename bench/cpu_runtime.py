"""CPU runtime benchmark: how the process around a model changes its speed on a CPU.

The same SSDLite, on the same decoded frames of the sample drive, in fresh
processes that differ only in

* **the allocator**: glibc's defaults, or set up by :mod:`streams.allocator`
  (``SECMLOPS_TUNE_MALLOC``, what every ``secmlops`` command does);
* **the thread that runs torch**: the main thread (as a bare benchmark does),
  one other thread only (as a worker's device thread did before CPU lanes,
  :mod:`streams.device_thread`), another thread after the main thread has
  run the model too (two OpenMP teams in one process), or one other thread
  with its CPU lanes (each batch in parts of ``CPU_BATCH_PART`` frames, one lane
  per core side by side, one torch thread each: what a worker does now,
  :mod:`streams.cpu_lanes`).

Each configuration runs in its own interpreter, ``--repeats`` times,
interleaved, because both effects depend on the process's history.  Prints
Markdown: frames/s and CPU ms per frame (all the process's threads), and each
configuration's rate against the main thread with the allocator tuned,
median of the repeats.  Run: ``python bench/cpu_runtime.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

CONFIGS = {
    "main thread, allocator tuned": ("main", True),
    "main thread, glibc defaults": ("main", False),
    "one other thread, allocator tuned": ("thread", True),
    "one other thread, glibc defaults": ("thread", False),
    "another thread after the main one, allocator tuned": ("both", True),
    "one other thread and its CPU lanes, allocator tuned": ("lanes", True),
}
BASELINE = "main thread, allocator tuned"


def child(where: str, tuned: bool, frames: int, passes: int) -> dict[str, float]:
    """Load, decode and time the model in this process as configured; its rate and CPU."""
    from streams.allocator import tune_allocator

    applied = tune_allocator(tuned)  # first, as the CLI does, before any model memory
    from detectors.imaging import decode_image, encode_jpeg
    from model_store.catalog import ssdlite_parts
    from producers.sources import open_source
    from streams.agents.detect import CPU_BATCH_PART
    from streams.assets import ASSETS, fetch_asset
    from streams.cpu_lanes import CpuLanes, usable_cores
    from streams.settings import Settings

    cache = Settings.from_env().cache_dir
    drive = fetch_asset(ASSETS["sample-drive"], cache, quiet=True)
    jpegs = [encode_jpeg(f.image, 90) for f in open_source(drive, "b", end=frames).frames()]
    graph = fetch_asset(ASSETS["ssdlite-graph"], cache, quiet=True)
    result: dict[str, float] = {"tuned": float(applied)}

    def run() -> None:
        from detectors.models.ssdlite import SSDLiteDetector

        manifest, state = ssdlite_parts(graph)
        detector = SSDLiteDetector.from_state(state, manifest, version="bench")
        images = [decode_image(j, width=640, height=360) for j in jpegs]
        lanes = CpuLanes(usable_cores() if where == "lanes" else 1, name="bench-lane")
        lanes.claim_thread()
        detector.detect_batch(images[:4])  # warm-up
        wall = cpu = 0.0
        for _ in range(passes):
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(images), 32):
                if lanes.lanes > 1:
                    lanes.run(detector.detect_batch, images[i : i + 32], CPU_BATCH_PART)
                else:
                    detector.detect_batch(images[i : i + 32])
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
        result["fps"] = passes * len(images) / wall
        result["cpu_ms"] = 1000 * cpu / (passes * len(images))

    if where in ("main", "both"):
        run()
    if where in ("thread", "both", "lanes"):
        worker = threading.Thread(target=run, name="device")
        worker.start()
        worker.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=320)
    parser.add_argument("--passes", type=int, default=2, help="timed passes per process")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("WHERE", "TUNED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        where, tuned = args.child
        print(json.dumps(child(where, tuned == "1", args.frames, args.passes)))
        return
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    root = Path(__file__).resolve().parent.parent
    for repeat in range(args.repeats):
        for name, (where, tuned) in CONFIGS.items():
            command = [sys.executable, __file__, "--frames", str(args.frames)]
            command += ["--passes", str(args.passes), "--child", where, "1" if tuned else "0"]
            out = subprocess.run(  # noqa: S603 - this interpreter, this script
                command,
                capture_output=True,
                text=True,
                check=True,
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(root)},
            )
            runs[name].append(json.loads(out.stdout.splitlines()[-1]))
            rate = runs[name][-1]["fps"]
            print(f"[repeat {repeat + 1}] {name}: {rate:.1f} frames/s", file=sys.stderr, flush=True)
    import torch

    print(
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"SSDLite on {args.frames} frames of the sample drive (640x360), batches of 32, "
        f"{args.passes} passes per process, median of {args.repeats} processes each\n"
    )
    print("| process | frames/s (range) | CPU ms/frame | vs main thread, tuned |")
    print("|---|---|---|---|")
    base = [r["fps"] for r in runs[BASELINE]]
    for name, results in runs.items():
        fps = [r["fps"] for r in results]
        ratios = [f / b for f, b in zip(fps, base, strict=True)]
        print(
            f"| {name} | {statistics.median(fps):.1f} ({min(fps):.1f}-{max(fps):.1f}) | "
            f"{statistics.median(r['cpu_ms'] for r in results):.1f} | "
            f"{statistics.median(ratios):.2f} |"
        )


if __name__ == "__main__":
    main()
