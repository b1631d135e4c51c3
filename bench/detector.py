"""Detector benchmark: the bare model against the same model inside the streaming pipeline.

Measured side by side in one run, for each registered architecture:

* **bare**: decode the JPEG frames and run ``detect_batch`` in batches of the
  worker's batch size, nothing else running;
* **pipeline**: the same signed frames sent to ``pds.frames`` on a private stack
  (broker and Redis on the same machine), a ``secmlops worker`` serving that
  version; throughput from the end of its first batch to the end of its last
  (predictions carry their completion time), so the sender's burst and the
  first fetch are not counted against it.

Target on the CPU: pipeline >= 0.85 of bare.  On a GPU (when torch sees one)
it also sweeps batch sizes 1 to 256 in fp32 and fp16 with peak memory.

Run: ``python bench/detector.py`` (``make bench`` runs it).  Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from detectors.imaging import decode_image, encode_jpeg
from detectors.models.base import Detector
from model_store.catalog import build_detector
from model_store.registry import Registry
from model_store.setup import setup_models
from model_store.signing import Verifier, throwaway_keys
from producers.frames import FrameSender, build_frame
from producers.sources import open_source
from streams.assets import ASSETS, fetch_asset
from streams.clients import redis_client
from streams.outcome_reader import OutcomeReader
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack, ephemeral_env
from streams.worker import WorkerProcess


def bare(detector: Detector, jpegs: list[bytes], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(jpegs), batch):
        images = [decode_image(j, width=640, height=360) for j in jpegs[i : i + batch]]
        detector.detect_batch(images)
    return len(jpegs) / (time.perf_counter() - t0)


def pipeline(settings: Settings, keyring: Keyring, jpegs: list[bytes], log: Path) -> float:
    worker = WorkerProcess(log).start()
    try:
        worker.wait_ready(settings)
        frames = [build_frame("bench", i, _blank()) for i in range(len(jpegs))]
        with OutcomeReader(settings) as reader, FrameSender(settings, keyring) as sender:
            ids = set()
            for frame, jpeg in zip(frames, jpegs, strict=True):
                ids.add(sender.send(_with_image(frame, jpeg)).frame_id)
            sender.flush()
            outcomes = reader.wait(ids, timeout_s=1800)
        if len(outcomes.predictions) != len(jpegs):
            raise RuntimeError(
                f"{len(outcomes.predictions)} of {len(jpegs)} predicted:\n{worker.log_tail()}"
            )
        return _steady_rate([p.processed_ts_ns for p in outcomes.predictions.values()])
    finally:
        worker.stop()


def _steady_rate(done_ns: list[int]) -> float:
    """Frames per second after the first batch: the sender's burst and the first fetch excluded.

    Predictions of one batch share a completion time, so the rate is taken
    from the end of the first batch to the end of the last.
    """
    done = sorted(done_ns)
    later = [t for t in done if t > done[0] + 1_000_000]
    return len(later) / ((done[-1] - done[0]) / 1e9)


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
    args = parser.parse_args()

    base = Settings.from_env()
    drive = fetch_asset(ASSETS["sample-drive"], base.cache_dir, quiet=True)
    jpegs = [encode_jpeg(f.image, 90) for f in open_source(drive, "b", end=args.frames).frames()]
    keys = {**throwaway_keys(), "SECMLOPS_DEVICE": "cpu"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="secmlops-bench-") as tmp:
        env = {**ephemeral_env(Path(tmp)), **keys}
        os.environ.update(env)  # the worker processes inherit it
        settings = Settings.from_env()
        stack = Stack(settings)
        stack.up(progress=False)
        try:
            list(setup_models(settings, which=args.models.split(",")))
            registry = Registry(redis_client(settings), Verifier.from_settings(settings))
            keyring = Keyring.from_settings(settings)
            for info in registry.versions(settings.model_name):
                registry.promote(settings.model_name, info.version, actor="bench", reason="bench")
                detector = build_detector(
                    registry.artifact(settings.model_name, info.version),
                    registry.verifier,
                    version=info.version,
                )
                bare(detector, jpegs[:8], settings.worker_batch_size)  # warm-up
                b, p = [], []
                for _ in range(args.repeats):
                    b.append(bare(detector, jpegs, settings.worker_batch_size))
                    p.append(pipeline(settings, keyring, jpegs, Path(tmp) / "worker.log"))
                rows.append((info.architecture, statistics.median(b), statistics.median(p)))
        finally:
            stack.down()

    import torch

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"(CPU, {torch.get_num_threads()} threads); {args.frames} frames of the sample drive, "
        f"640x360 JPEG q90, batch {Settings.from_env().worker_batch_size}, "
        f"median of {args.repeats}\n"
    )
    print("| model | bare frames/s | pipeline frames/s | pipeline / bare |\n|---|---|---|---|")
    for arch, b, p in rows:
        print(f"| {arch} | {b:.1f} | {p:.1f} | **{p / b:.2f}** (target ≥ 0.85) |")


if __name__ == "__main__":
    main()
