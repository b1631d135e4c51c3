"""Where a GPU batch of a new size spends its first seconds: decode, network or postprocess.

Why: on the H200 (docs/benchmarks.md, "On a GPU") the first batch of every new
size took 3 to 5 s, against milliseconds afterwards, so each worker start and
model swap pays seconds per batch bucket.  This splits that first batch into its
stages (each timed with CUDA synchronisation), with cuDNN as torch ships it and
with cuDNN off (torch's own convolution kernels), and then measures both at a
steady batch of 64, so that the trade is one table.  Each batch size appears
once per setting, so every measured first batch is a shape that process has not
seen.  ``--device cpu`` runs the same code as a smoke test.

Needs the sample drive and the SSDLite graph in the cache (``SECMLOPS_CACHE_DIR``).
Prints Markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from gpu_detector import inputs, sync  # a sibling script: bench/ is the first entry of sys.path

from detectors.imaging import decode_jpegs
from detectors.models.ssdlite import SSDLiteDetector


def stages(detector: SSDLiteDetector, jpegs: list[bytes], device: str) -> dict[str, float]:
    """Milliseconds of each stage for one batch of ``jpegs``."""
    model, times = detector.model, {}

    def timed(name: str, fn):  # a local helper
        sync(device)
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        times[name] = 1000 * (time.perf_counter() - t0)
        return result

    with torch.inference_mode():
        images = timed("decode", lambda: decode_jpegs(jpegs, [(640, 360)] * len(jpegs), device))
        x = timed("preprocess", lambda: model.preprocess(torch.stack(images)))
        encodings, logits = timed("network", lambda: model.raw(x))

        def post() -> list:
            scores = torch.sigmoid(logits[..., 1].float() / model.logit_scale)
            found = model.postprocess(model.decode(encodings), scores, [(360, 640)] * len(jpegs))
            return torch.cat(found).cpu().numpy()

        timed("postprocess", post)
    return times


def steady(detector: SSDLiteDetector, jpegs: list[bytes], device: str, seconds: float) -> float:
    sizes = [(640, 360)] * len(jpegs)
    detector.detect_tensors(decode_jpegs(jpegs, sizes, device))
    sync(device)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        detector.detect_tensors(decode_jpegs(jpegs, sizes, device))
        done += len(jpegs)
    sync(device)
    return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=1.0, help="per steady setting")
    parser.add_argument("--cache", type=Path, default=None, help="folder holding assets/")
    args = parser.parse_args()
    jpegs, manifest, state = inputs(args.cache, 64)
    half = args.device.startswith("cuda")
    detector = SSDLiteDetector.from_state(state, manifest, device=args.device, half=half)
    torch.zeros(1, device=args.device).sum().item()  # the CUDA context, outside every figure
    card = torch.cuda.get_device_name() if half else "CPU"
    print(f"Card: {card}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version()}; "
          f"SSDLite {'fp16' if half else 'fp32'}, channels-last, no batch padding\n")  # fmt: skip
    print("| cuDNN | batch | call | decode ms | preprocess ms | network ms | postprocess ms |")
    print("|---|---|---|---|---|---|---|")
    plan = [(True, 3), (True, 24), (False, 5), (False, 40), (True, 3)]
    seen: set[tuple[bool, int]] = set()
    for cudnn, batch in plan:
        torch.backends.cudnn.enabled = cudnn
        call = "again" if (cudnn, batch) in seen else "first"
        seen.add((cudnn, batch))
        t = stages(detector, jpegs[:batch], args.device)
        ms = " | ".join(f"{t[k]:.1f}" for k in ("decode", "preprocess", "network", "postprocess"))
        print(f"| {'on' if cudnn else 'off'} | {batch} | {call} | {ms} |", flush=True)
    print("\n| cuDNN | steady frames/s, batch 64 |\n|---|---|")
    for cudnn in (True, False):
        torch.backends.cudnn.enabled = cudnn
        rate = steady(detector, jpegs, args.device, args.seconds)
        print(f"| {'on' if cudnn else 'off'} | {rate:.0f} |", flush=True)
    torch.backends.cudnn.enabled = True


if __name__ == "__main__":
    main()
