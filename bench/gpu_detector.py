"""GPU sweep of the bare detector: nvJPEG decode + SSDLite, batch 1 to 256, fp32 and fp16.

For the GPU machine (no Kafka there): it measures what the detector agent's
device path does per batch (decode on the device, preprocess, network,
vectorised postprocess, one copy back), with CUDA synchronisation, the
peak GPU memory of each setting, and the time of each setting's first batch
(a new shape, for which cuDNN plans every convolution: what the detectors'
batch buckets and warm-up save the stream), and names the card.  ``--device cpu`` runs
the same code on the CPU as a smoke test.

Needs the sample drive and the SSDLite graph in the cache; copy
``~/.cache/secmlops/assets`` along, or pass ``--cache``.  Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from detectors.imaging import decode_jpegs, encode_jpeg
from detectors.models.ssdlite import SSDLiteDetector
from model_store.catalog import ssdlite_parts
from producers.sources import open_source
from streams.assets import ASSETS, fetch_asset


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sweep(
    detector: SSDLiteDetector, jpegs: list[bytes], batch: int, device: str, seconds: float
) -> tuple[float, float, float]:
    """Frames/s over at least ``seconds`` (after one warm-up batch), peak memory in GiB,
    and the warm-up batch's ms: the first batch of a new shape pays for cuDNN's plans."""
    sizes = [(640, 360)] * batch
    chunk = (jpegs * (batch // len(jpegs) + 1))[:batch]
    sync(device)
    t0 = time.perf_counter()
    detector.detect_tensors(decode_jpegs(chunk, sizes, device))  # ends with a copy back
    first = 1000 * (time.perf_counter() - t0)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        detector.detect_tensors(decode_jpegs(chunk, sizes, device))
        done += batch
    sync(device)
    rate = done / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    return rate, peak, first


def inputs(cache: Path | None, frames: int) -> tuple[list[bytes], dict, dict]:
    """The first ``frames`` frames of the sample drive as JPEG q90, and SSDLite's manifest and
    state, from the asset cache (``cache``, or ``SECMLOPS_CACHE_DIR``, or the user's)."""
    cache = cache or Path(os.environ.get("SECMLOPS_CACHE_DIR", Path.home() / ".cache" / "secmlops"))
    drive = fetch_asset(ASSETS["sample-drive"], cache, quiet=True)
    graph = fetch_asset(ASSETS["ssdlite-graph"], cache, quiet=True)
    jpegs = [encode_jpeg(f.image, 90) for f in open_source(drive, "gpu", end=frames).frames()]
    manifest, state = ssdlite_parts(graph)
    return jpegs, manifest, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="1,8,32,64,128,256")
    parser.add_argument("--seconds", type=float, default=3.0, help="per setting")
    parser.add_argument("--cache", type=Path, default=None, help="folder holding assets/")
    args = parser.parse_args()
    jpegs, manifest, state = inputs(args.cache, 300)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"Card: {name}; torch {torch.__version__}; 640x360 JPEG q90 frames of the sample "
        f"drive, decoded on the device; {args.seconds:g} s per setting\n"
    )
    print(
        "| precision | batch | frames/s | peak GPU memory, GiB | first batch, ms |\n"
        "|---|---|---|---|---|"
    )
    for half in (False, True):
        if half and not args.device.startswith("cuda"):
            continue
        for batch in (int(b) for b in args.batches.split(",")):
            detector = SSDLiteDetector.from_state(
                state, manifest, device=args.device, half=half, max_batch=batch
            )
            rate, peak, first = sweep(detector, jpegs, batch, args.device, args.seconds)
            precision = "fp16" if half else "fp32"
            print(f"| {precision} | {batch} | {rate:.0f} | {peak:.2f} | {first:.0f} |", flush=True)
            del detector
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
