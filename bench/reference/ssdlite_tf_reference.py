"""Reference detections of the ORIGINAL SSDLite TensorFlow graph on real frames.

Why: :mod:`detectors.models.ssdlite` is a hand port of a frozen TF graph; the only honest
check of it is the original graph itself, run by TensorFlow on the same frames.  TensorFlow
is never a project dependency, so this runs in a throwaway virtual environment and writes a
small JSON file that ``tests/detectors/models/test_ssdlite.py`` compares against::

    python3 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu==2.21.0 opencv-python-headless==4.14.0.94 numpy
    /tmp/tfref/bin/python bench/reference/ssdlite_tf_reference.py   # from the repo root

What is fed to the graph: each BGR frame exactly as :func:`producers.sources.open_source`
decodes it (640×360), channels reversed to RGB, as a ``(1, 360, 640, 3)`` uint8 batch into
``image_tensor:0``.  The graph resizes to 300×300 itself (``Preprocessor/.../ResizeBilinear``)
and scales to [-1, 1].  (The package's own ``api.py`` first shrinks the frame with
``cv2.resize`` to 300×300, a different bilinear resize; the graph's own input path is what
defines the model, so it is what the port reproduces and what is recorded here.)

Per frame the file holds the frame number, the first 16 hex digits of the sha256 of the
decoded BGR pixels (so the test can tell whether its decoder gave the same image), and every
output box with score >= 0.3 as ``x1, y1, x2, y2`` in pixels (``detection_boxes`` times
width/height) with its score.  The graph has one class (person), so classes are not recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from producers.sources import open_source  # noqa: E402
from streams.assets import ASSETS, fetch_asset, sha256_file  # noqa: E402
from streams.settings import Settings  # noqa: E402

DEFAULT_OUT = ROOT / "tests/detectors/models/data/ssdlite_reference.json"
MIN_SCORE = 0.3


def run(every: int, count: int, out: Path) -> dict:
    """Run the graph on frames ``0, every, 2·every, ...`` (``count`` of them); write ``out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    cache = Settings.from_env().cache_dir
    graph_path = fetch_asset(ASSETS["ssdlite-graph"], cache, quiet=True)
    video_path = fetch_asset(ASSETS["sample-drive"], cache, quiet=True)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2,
                                      inter_op_parallelism_threads=1)  # fmt: skip
    fetches = ["num_detections:0", "detection_boxes:0", "detection_scores:0"]
    frames = []
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        source = open_source(video_path, "ref", end=every * (count - 1) + 1)
        for frame in source.frames():
            if frame.number % every:
                continue
            bgr = frame.image
            height, width = bgr.shape[:2]
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            num, boxes, scores = session.run(fetches, {"image_tensor:0": rgb[None]})
            n = int(num[0])
            keep = scores[0, :n] >= MIN_SCORE
            ymin, xmin, ymax, xmax = boxes[0, :n][keep].T.astype(np.float64)
            pixels = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], 1)
            frames.append({
                "number": frame.number,
                "image_sha256": hashlib.sha256(bgr.tobytes()).hexdigest()[:16],
                "height": height,
                "width": width,
                "boxes": np.round(pixels, 2).tolist(),
                "scores": np.round(scores[0, :n][keep].astype(np.float64), 6).tolist(),
            })  # fmt: skip
    doc = {
        "description": "Detections of the original frozen TF graph (score >= 0.3) on frames of "
        "the sample drive; made by bench/reference/ssdlite_tf_reference.py",
        "graph": {"asset": "ssdlite-graph", "sha256": sha256_file(graph_path)},
        "video": {"asset": "sample-drive", "sha256": sha256_file(video_path)},
        "software": {
            "tensorflow": tf.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "input": "BGR frame as producers.sources decodes it, reversed to RGB, fed at full size "
        "as a (1, H, W, 3) uint8 batch to image_tensor:0 (the graph resizes to 300x300 "
        "itself); one session.run per frame, 2 intra-op threads",
        "outputs": "detection_boxes (ymin, xmin, ymax, xmax in [0, 1]) times (H, W, H, W), "
        "rounded to 0.01 px, as x1, y1, x2, y2; detection_scores rounded to 1e-6",
        "frame_fields": "number; image_sha256: first 16 hex digits of sha256 of the decoded BGR "
        "pixels (H*W*3 bytes); height; width; boxes; scores (best first)",
        "min_score": MIN_SCORE,
        "frame_numbers": [f["number"] for f in frames],
        "frames": frames,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_dump(doc))
    return doc


def _dump(doc: dict) -> str:
    """JSON with one line per top-level entry and per frame: small, and diffs read well."""
    head = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items() if k != "frames"]
    frames = ",\n".join(f"  {json.dumps(f, separators=(',', ':'))}" for f in doc["frames"])
    return "{\n" + ",\n".join([*head, f' "frames": [\n{frames}\n ]']) + "\n}\n"


def main() -> None:
    """Command line: ``--every 15 --count 120 --out tests/.../ssdlite_reference.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=15, help="take every N-th frame")
    parser.add_argument("--count", type=int, default=120, help="how many frames")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    doc = run(args.every, args.count, args.out)
    boxes = sum(len(f["scores"]) for f in doc["frames"])
    strong = sum(s >= 0.5 for f in doc["frames"] for s in f["scores"])
    print(f"{args.out}: {len(doc['frames'])} frames, {boxes} boxes >= {MIN_SCORE}, "
          f"{strong} >= 0.5")  # fmt: skip


if __name__ == "__main__":
    main()
