"""Replay benchmark: is Kafka or signing ever the bottleneck of a replay?

Measured side by side in one run, on a private stack (free ports, temporary
folder), each pair interleaved and repeated, the median reported:

1. **Sending path vs bare producer.** The same pre-encoded JPEG frames, sent
   (a) by a bare kafka-python producer as ready-made event bytes, and (b) by
   the project's send path: sign, encode with schema check, send.  Target:
   (b) >= 0.8 of (a).
2. **Replay vs decode + encode alone.** The drive's frames decoded and
   JPEG-encoded with nothing else, against a full ``--fast`` replay of the
   same frames into Kafka (per-stage times from the replay's own summary).
   Target: >= 0.8.
3. **Adversarial cost.** Seconds per 640x360 frame for FGSM, PGD (10 steps)
   and the patch attack, on the CPU (and the GPU when torch sees one).

Run: ``python bench/replay.py`` (``make bench`` runs it).  Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from detectors.imaging import encode_jpeg
from producers.frames import FrameSender, encoded_frame
from producers.injection import parse_spec
from producers.replay import Replayer, ReplayOptions
from producers.sources import open_source, prefetch
from streams.assets import ASSETS, fetch_asset
from streams.clients import producer
from streams.events import Frame, encode
from streams.settings import Settings
from streams.signing import Keyring, generate_key
from streams.stack import Stack, ephemeral_env
from streams.topics import TOPICS


def frames_of(drive: Path, n: int) -> list:
    return [f.image for f in open_source(drive, "bench", end=n).frames()]


def events(jpegs: list[bytes], camera: str) -> list[Frame]:
    return [encoded_frame(camera, i, jpeg, width=640, height=360) for i, jpeg in enumerate(jpegs)]


def bare_send(settings: Settings, values: list[bytes]) -> float:
    kafka = producer(settings, client_id="bench-bare")
    t0 = time.perf_counter()
    for value in values:
        kafka.send(TOPICS.frames.name, key=b"bench-bare", value=value)
    kafka.flush()
    elapsed = time.perf_counter() - t0
    kafka.close()
    return len(values) / elapsed


def path_send(settings: Settings, keyring: Keyring, frames: list[Frame]) -> float:
    with FrameSender(settings, keyring) as sender:
        t0 = time.perf_counter()
        for frame in frames:
            sender.send(frame)
        sender.flush()
        return len(frames) / (time.perf_counter() - t0)


def decode_encode_alone(drive: Path, n: int) -> float:
    t0 = time.perf_counter()
    for frame in open_source(drive, "bench", end=n).frames():
        encode_jpeg(frame.image, 90)
    return n / (time.perf_counter() - t0)


def replay_fast(settings: Settings, keyring: Keyring, drive: Path, n: int) -> tuple[float, dict]:
    with FrameSender(settings, keyring) as sender:
        summary = Replayer(sender, ReplayOptions()).run(
            prefetch(open_source(drive, "bench-replay", end=n).frames()), progress=False
        )
    if not summary.ok or summary.sent != n:
        raise RuntimeError(f"the replay did not deliver every frame: {summary}")
    return summary.fps, summary.stage_s


def attack_cost(drive: Path, device: str, frames: int) -> dict[str, float]:
    from producers.injection.adversarial import Adversary

    adversary = Adversary(device=device)
    images = frames_of(drive, 200)[::40][: max(1, frames)]
    costs = {}
    for text in ("fgsm:eps=8/255", "pgd:eps=8/255,steps=10", "patch:steps=40"):
        spec = parse_spec(text)
        adversary.attack(images[0], spec)  # warm-up
        t0 = time.perf_counter()
        for image in images:
            adversary.attack(image, spec)
        costs[text] = (time.perf_counter() - t0) / len(images)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attack-frames", type=int, default=3)
    args = parser.parse_args()

    drive = fetch_asset(ASSETS["sample-drive"], Settings.from_env().cache_dir, quiet=True)
    keyring = Keyring({"bench": bytes.fromhex(generate_key())}, "bench")
    images = frames_of(drive, args.frames)
    jpegs = [encode_jpeg(image, 90) for image in images]
    with tempfile.TemporaryDirectory(prefix="secmlops-bench-") as tmp:
        settings = Settings.from_env({**os.environ, **ephemeral_env(Path(tmp))})
        stack = Stack(settings)
        stack.up(progress=False)
        try:
            bare, path, alone, replayed, stages = [], [], [], [], []
            for _ in range(args.repeats):
                ready = [encode(keyring.sign(f)) for f in events(jpegs, "bench-bare")]
                bare.append(bare_send(settings, ready))
                path.append(path_send(settings, keyring, events(jpegs, "bench-path")))
                alone.append(decode_encode_alone(drive, args.frames))
                fps, stage_s = replay_fast(settings, keyring, drive, args.frames)
                replayed.append(fps)
                stages.append(stage_s)
        finally:
            stack.down()

    med = statistics.median
    kb = statistics.mean(len(j) for j in jpegs) / 1024
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, OpenCV {cv2.__version__}, {args.frames} frames of "
        f"the sample drive (640x360, JPEG q90, {kb:.0f} KB), median of {args.repeats}\n"
    )
    print("| measure | frames/s | ratio |\n|---|---|---|")
    print(f"| bare kafka-python producer, pre-encoded events | {med(bare):.0f} | 1 |")
    print(
        f"| send path: sign + encode + send | {med(path):.0f} | "
        f"**{med(path) / med(bare):.2f}** (target ≥ 0.8) |"
    )
    print(f"| decode + JPEG encode alone | {med(alone):.0f} | 1 |")
    print(
        f"| full replay (`--fast`) into Kafka | {med(replayed):.0f} | "
        f"**{med(replayed) / med(alone):.2f}** (target ≥ 0.8) |"
    )
    stage = {k: med(s[k] for s in stages) for k in stages[0]}
    total = sum(stage.values())
    print(
        "\nReplay time per stage (median run): "
        + ", ".join(
            f"{k} {v / args.frames * 1e3:.2f} ms/frame ({v / total:.0%})" for k, v in stage.items()
        )
    )

    import torch
    from kafka.record import util

    print(f"\nkafka-python CRC32C: {util._crc32c.__module__}.{util._crc32c.__name__}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        name = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
        costs = attack_cost(drive, device, args.attack_frames)
        print(f"\nAttack cost per 640x360 frame on {name}, torch {torch.__version__}:\n")
        print("| attack | s/frame |\n|---|---|")
        for text, seconds in costs.items():
            print(f"| `{text}` | {seconds:.3f} |")


if __name__ == "__main__":
    main()
