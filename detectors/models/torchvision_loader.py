"""Bring your own model: a torchvision detection architecture with weights from a local file.

For users whose own pedestrian detector is a torchvision model (Faster R-CNN,
RetinaNet, FCOS, SSD, SSDLite ...).  Weights are read with safetensors, or
with ``torch.load(weights_only=True)`` for a ``.pt``/``.pth`` state dict, so a
weights file can never run code.  Nothing is downloaded: the architecture is
built with ``weights=None`` and ``weights_backbone=None``.

Note: torchvision's detection models postprocess image by image in Python,
so on a GPU they reach a fraction of what a batch-vectorised model does
(docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["TorchvisionDetector", "load_state"]


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``.pt``/``.pth`` file, without unpickling code."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


class TorchvisionDetector:
    """A torchvision detection model reporting one class (the pedestrian label) as boxes.

    Parameters
    ----------
    architecture
        A builder in ``torchvision.models.detection``, e.g. ``fasterrcnn_resnet50_fpn``.
    state
        Its state dict.
    num_classes
        As the model was trained (91 for COCO models).
    person_label
        The class index of pedestrians (1 in COCO).
    score_threshold
        Detections below this score are dropped.
    """

    def __init__(
        self,
        architecture: str,
        state: dict[str, torch.Tensor],
        *,
        num_classes: int = 91,
        person_label: int = 1,
        score_threshold: float = 0.5,
        device: str = "cpu",
        version: str = "1",
        **kwargs: Any,
    ) -> None:
        import torchvision.models.detection as zoo

        builder = getattr(zoo, architecture, None)
        if builder is None or not callable(builder):
            raise ValueError(f"torchvision has no detection architecture {architecture!r}")
        model = builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
        model.load_state_dict(state)
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.name = f"torchvision-{architecture}"
        self.version = version
        self.person_label = person_label
        self.score_threshold = score_threshold

    @torch.inference_mode()
    def detect_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [
            torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))
            .to(self.device)
            .float()
            / 255.0
            for img in images
        ]
        results = []
        for out in self.model(tensors):
            keep = (out["labels"] == self.person_label) & (out["scores"] >= self.score_threshold)
            boxes = torch.cat([out["boxes"][keep], out["scores"][keep, None]], dim=1)
            results.append(boxes.float().cpu().numpy().astype(np.float32))
        return results
