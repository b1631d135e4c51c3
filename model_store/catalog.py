"""The architectures the store knows: how to make an artifact of each, and how to run one.

One entry per architecture named in a manifest's ``architecture`` field.  A
worker only ever builds a detector from an artifact that
:meth:`~model_store.artifacts.Artifact.verified_state` has checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detectors.models.base import Detector
from model_store.artifacts import Artifact
from model_store.errors import ModelStoreError
from model_store.signing import Signer, Verifier

__all__ = ["ARCHITECTURES", "build_detector", "hog_parts", "ssdlite_parts", "torchvision_parts"]

HOG = "hog-torch"
SSDLITE = "ssdlite-mobilenetv2-person"
TORCHVISION = "torchvision"
ARCHITECTURES = (HOG, SSDLITE, TORCHVISION)


def hog_parts(svm: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Manifest and state of the HOG + linear SVM detector (OpenCV's pretrained SVM by default)."""
    import cv2
    import torch

    coefficients = cv2.HOGDescriptor_getDefaultPeopleDetector() if svm is None else svm
    manifest = {
        "architecture": HOG,
        "description": "Dalal-Triggs HOG + linear SVM people detector, differentiable torch port",
        "preprocessing": {
            "input": "BGR uint8, any size",
            "window": [64, 128],
            "win_stride": 8,
            "padding": 8,
            "scale": 1.05,
            "hit_threshold": 0.0,
        },
        "source": {
            "package": "opencv-python-headless",
            "version": cv2.__version__,
            "function": "cv2.HOGDescriptor_getDefaultPeopleDetector",
        },
        "metrics": {
            "fidelity": "boxes identical to cv2.HOGDescriptor.detectMultiScale "
            "on 360 frames of the sample drive"
        },
    }
    state = {"svm": torch.from_numpy(np.asarray(coefficients, dtype=np.float32).ravel().copy())}
    return manifest, state


def ssdlite_parts(graph: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Manifest and state of the SSDLite-MobileNetV2 person detector, converted from TF."""
    from detectors.convert.ssdlite import convert

    state, manifest = convert(graph)
    return dict(manifest), dict(state)


def torchvision_parts(
    architecture: str, weights: Path, *, num_classes: int = 91, person_label: int = 1
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Manifest and state of a user's own torchvision detection model."""
    from detectors.models.torchvision_loader import load_state

    manifest = {
        "architecture": TORCHVISION,
        "torchvision_architecture": architecture,
        "num_classes": num_classes,
        "person_label": person_label,
        "source": {"file": weights.name},
    }
    return manifest, load_state(weights)


def make_artifact(parts: tuple[Mapping[str, Any], Mapping[str, Any]], signer: Signer) -> Artifact:
    manifest, state = parts
    return Artifact.from_state(manifest, state, signer)


def build_detector(
    artifact: Artifact,
    verifier: Verifier,
    *,
    version: str,
    device: str = "cpu",
    half: bool = False,
    max_batch: int | None = None,
) -> Detector:
    """Verify ``artifact``, then build the detector its manifest names.

    ``max_batch`` is the most frames SSDLite stacks into one network call (its own default
    when None); HOG and torchvision models batch their own way.
    """
    state = artifact.verified_state(verifier, device)
    manifest = artifact.manifest
    arch = manifest["architecture"]
    if arch == HOG:
        from detectors.models.hog_torch import TorchHog

        pre = manifest.get("preprocessing", {})
        search = {
            k: pre[k] for k in ("win_stride", "padding", "scale", "hit_threshold") if k in pre
        }
        return TorchHog(device=device, svm=state["svm"].cpu().numpy(), version=version, **search)
    if arch == SSDLITE:
        from detectors.models.ssdlite import SSDLiteDetector

        return SSDLiteDetector.from_state(
            state, manifest, device=device, half=half, version=version, max_batch=max_batch
        )
    if arch == TORCHVISION:
        from detectors.models.torchvision_loader import TorchvisionDetector

        return TorchvisionDetector(
            manifest["torchvision_architecture"],
            state,
            num_classes=manifest["num_classes"],
            person_label=manifest["person_label"],
            device=device,
            version=version,
        )
    raise ModelStoreError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
