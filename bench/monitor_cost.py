"""What the monitors cost, against the detector alone, measured side by side in one run.

For each detector (SSDLite and the torch HOG port), on the same 640×360
JPEG frames of the sample drive, in batches of the worker's size:

* **detector only**: decode + ``detect_batch``;
* **each monitor**: its ``score_batch`` on the same decoded frames and
  predictions, in the order the worker runs them (feature squeezing with its
  sampling and energy trigger, so its real share of model runs);
* **all monitors**: the detector plus every monitor, run one after the
  other in one thread.  Budget: ≥ 0.8 of detector-only throughput (the
  monitors cost ≤ 20 %).

Serial, single-thread timing is the honest upper bound: in the worker each
monitor has its own thread, which on a machine with spare cores hides part
of this cost.  Run: ``python bench/monitor_cost.py`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import cv2

from detectors.imaging import decode_image, decode_jpegs, encode_jpeg
from detectors.models.base import warm_up
from detectors.monitors.base import Observation
from detectors.monitors.registry import available, load
from model_store.catalog import build_detector, hog_parts, make_artifact, ssdlite_parts
from model_store.signing import Signer, Verifier, new_key_pair
from streams.allocator import tune_allocator
from streams.assets import ASSETS, fetch_asset
from streams.offline import _prediction
from streams.settings import Settings

CPU_DECODE = "frame decode for the monitors (CPU)"


def frames(n: int) -> list[bytes]:
    path = fetch_asset(ASSETS["sample-drive"], Settings.from_env().cache_dir, quiet=True)
    capture, out = cv2.VideoCapture(str(path)), []
    while len(out) < n:
        ok, image = capture.read()
        if not ok:
            break
        out.append(encode_jpeg(image, 90))
    return out


def detector(kind: str, device: str):
    settings = Settings.from_env()
    keys = new_key_pair()
    signer = Signer(keys.private_hex)
    if kind == "ssdlite":
        graph = fetch_asset(ASSETS["ssdlite-graph"], settings.cache_dir, quiet=True)
        parts = ssdlite_parts(graph)
    else:
        parts = hog_parts()
    artifact = make_artifact(parts, signer)
    half = device.startswith("cuda")
    return build_detector(
        artifact, Verifier([keys.public_hex]), version="1", device=device, half=half
    )


def run(kind: str, jpegs: list[bytes], batch: int, repeats: int, device: str) -> list[str]:
    model = detector(kind, device)
    monitors = [load(name) for name in available()]
    # On a GPU the detector decodes on the device (as the worker does) and the monitors
    # need the frame on the CPU too: that second decode is a monitor cost of its own.
    on_device = device.startswith("cuda") and hasattr(model, "detect_tensors")
    timings: dict[str, list[float]] = {"decode+detect": [], **{m.name: [] for m in monitors}}
    if on_device:
        timings[CPU_DECODE] = []
        warm_up(model)  # every batch shape, as the worker does at load
    for _ in range(repeats):
        instances = {cls.name: cls() for cls in monitors}
        spent = dict.fromkeys(timings, 0.0)
        for start in range(0, len(jpegs), batch):
            chunk = jpegs[start : start + batch]
            t0 = time.perf_counter()
            if on_device:
                results = model.detect_tensors(
                    decode_jpegs(chunk, [(640, 360)] * len(chunk), device)
                )
                spent["decode+detect"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                images = [decode_image(j, width=640, height=360) for j in chunk]
                spent[CPU_DECODE] += time.perf_counter() - t0
            else:
                images = [decode_image(j, width=640, height=360) for j in chunk]
                results = model.detect_batch(images)
                spent["decode+detect"] += time.perf_counter() - t0
            observations = [
                Observation(
                    "cam",
                    f"{start + i:032x}",
                    start + i,
                    (start + i) * 33_366_667,
                    (start + i) * 33_366_667,
                    image=image,
                    prediction=_prediction(
                        model, "cam", f"{start + i:032x}", start + i, start + i, boxes
                    ),
                )
                for i, (image, boxes) in enumerate(zip(images, results, strict=True))
            ]
            for name, monitor in instances.items():
                t0 = time.perf_counter()
                monitor.score_batch(observations, model.detect_batch)
                spent[name] += time.perf_counter() - t0
        for name, seconds in spent.items():
            timings[name].append(seconds)
    n = len(jpegs)
    base = statistics.median(timings["decode+detect"])
    total = base + sum(statistics.median(v) for k, v in timings.items() if k != "decode+detect")
    lines = [
        f"#### {model.name} on {device} ({n} frames, batch {batch}, median of {repeats})",
        "",
        "| Stage | ms/frame | throughput vs detector only |",
        "|---|---|---|",
        f"| detector only (decode + detect) | {1000 * base / n:.2f} | 1.00 |",
    ]
    for name in [m.name for m in monitors] + ([CPU_DECODE] if on_device else []):
        cost = statistics.median(timings[name])
        lines.append(f"| + {name} | {1000 * cost / n:.3f} | {base / (base + cost):.3f} |")
    lines.append(f"| **all monitors** | {1000 * total / n:.2f} | **{base / total:.3f}** |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detectors", default="ssdlite,hog")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (fp16 on cuda)")
    args = parser.parse_args()
    import torch

    tune_allocator(Settings.from_env().tune_malloc)  # as every secmlops command does
    jpegs = frames(args.frames)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"### Monitor cost ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {device})\n"
    )
    for kind in args.detectors.split(","):
        print("\n".join(run(kind, jpegs, args.batch, args.repeats, args.device)) + "\n")


if __name__ == "__main__":
    main()
