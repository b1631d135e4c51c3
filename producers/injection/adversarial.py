"""White-box adversarial attacks that make pedestrians vanish, computed with torch autograd.

* **FGSM** and **PGD** (L∞, budget ``eps`` on images scaled to [0, 1]) minimise
  the target model's *vanishing loss*: the total SVM margin of windows that
  would still fire (see ``TorchHog.vanishing_loss``).
* **Patch**: a square patch on each detected pedestrian, its pixels free
  (not bounded by ``eps``) and optimised the same way: the physical-world
  threat of a printed pattern worn on the body.

The perturbation is computed on the exact pixels that will be encoded, and
rounded to uint8 so that the L∞ bound still holds after rounding.  Lossy
encoding (JPEG) afterwards weakens the attack, as it would for a real
attacker upstream of the camera's encoder; replay with ``--encoding png`` to
deliver it intact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from producers.injection.spec import InjectionSpec

__all__ = ["ATTACK_MODELS", "Adversary"]

ATTACK_MODELS = ("hog-torch",)


class Adversary:
    """Runs the attacks of a drill against one differentiable model.

    Parameters
    ----------
    model
        Name of the white-box target (``hog-torch``: the torch port of the
        OpenCV HOG people detector, with OpenCV's own coefficients).
    device
        ``"cpu"``, ``"cuda"``, or None for CUDA when available.
    detector
        A specific model version instead, e.g. one loaded (and verified) from
        the model store with :func:`from_registry`; it must offer
        ``vanishing_loss``.
    """

    def __init__(
        self, model: str = "hog-torch", device: str | None = None, *, detector: Any = None
    ) -> None:
        import torch

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if detector is not None:
            if not hasattr(detector, "vanishing_loss"):
                raise ValueError(
                    f"{detector.name} {detector.version} is not a differentiable target for the "
                    f"vanishing attacks; use a version whose architecture is one of {ATTACK_MODELS}"
                )
            self.model_name, self.model = f"{detector.name}@{detector.version}", detector
            return
        if model not in ATTACK_MODELS:
            raise ValueError(f"no differentiable model {model!r}; choose one of {ATTACK_MODELS}")
        from detectors.models.hog_torch import TorchHog

        self.model_name = model
        self.model = TorchHog(device=self.device)

    @classmethod
    def from_registry(cls, settings: Any, version: str, device: str | None = None) -> Adversary:
        """Attack exactly the model version the registry holds (signature verified first)."""
        from model_store.catalog import build_detector
        from model_store.registry import Registry
        from model_store.signing import Verifier
        from streams.clients import redis_client

        registry = Registry(redis_client(settings), Verifier.from_settings(settings))
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        detector = build_detector(
            registry.artifact(settings.model_name, version),
            registry.verifier,
            version=version,
            device=device,
        )
        return cls(device=device, detector=detector)

    def _to_tensor(self, image: np.ndarray) -> Any:
        torch = self._torch
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor.to(self.device, dtype=torch.float32).unsqueeze(0) / 255.0

    def _descend(
        self, clean: Any, adv: Any, mask: Any, steps: int, alpha: float, eps: float, margin: float
    ) -> Any:
        torch = self._torch
        for _ in range(steps):
            adv = adv.detach().requires_grad_(True)
            loss = self.model.vanishing_loss(adv, margin=margin).sum()
            if loss.item() == 0.0:
                break
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() - alpha * grad.sign() * mask
            adv = torch.min(torch.max(adv, clean - eps), clean + eps).clamp(0.0, 1.0)
        return adv.detach()

    def attack(self, image: np.ndarray, spec: InjectionSpec) -> tuple[np.ndarray, dict[str, float]]:
        """The attacked image (uint8, same shape) and numbers for the truth record."""
        torch = self._torch
        p = spec.params
        clean = self._to_tensor(image)
        with torch.no_grad():
            before = float(self.model.vanishing_loss(clean).sum())
        mask = torch.ones_like(clean)
        info: dict[str, float] = {"loss_before": round(before, 4)}
        if spec.type == "fgsm":
            eps, steps, alpha, margin = p["eps"], 1, p["eps"], 1.0
        elif spec.type == "pgd":
            eps, steps, alpha, margin = p["eps"], int(p["steps"]), p["alpha"], p["margin"]
        elif spec.type == "patch":
            boxes = self.model.detect_batch([image])[0]
            mask = self._patch_mask(image.shape[:2], boxes, p["size"])
            info["boxes"] = float(len(boxes))
            eps, steps, alpha, margin = 1.0, int(p["steps"]), p["alpha"], 1.0
        else:
            raise ValueError(f"{spec.type} is not an adversarial attack")
        if before == 0.0 or not bool(mask.any()):
            info["loss_after"] = before
            return image, info
        adv = self._descend(clean, clean.clone(), mask, steps, alpha, eps, margin)
        out = self._to_uint8(image, adv, eps)
        with torch.no_grad():
            info["loss_after"] = round(
                float(self.model.vanishing_loss(self._to_tensor(out)).sum()), 4
            )
        return out, info

    def _patch_mask(self, shape: tuple[int, int], boxes: np.ndarray, size: float) -> Any:
        torch = self._torch
        height, width = shape
        mask = torch.zeros((1, 3, height, width), device=self.device)
        for x1, y1, x2, y2, _ in boxes:
            side = max(4, int((y2 - y1) * size))
            cx, cy = int((x1 + x2) / 2), int(y1 + (y2 - y1) * 0.4)  # on the torso
            top, left = max(0, cy - side // 2), max(0, cx - side // 2)
            mask[..., top : min(height, top + side), left : min(width, left + side)] = 1.0
        return mask

    def _to_uint8(self, image: np.ndarray, adv: Any, eps: float) -> np.ndarray:
        """Round to uint8 without breaking the L∞ budget."""
        attacked = (adv.squeeze(0).permute(1, 2, 0).cpu().numpy() * 255.0).round()
        limit = math.floor(eps * 255 + 1e-6)
        delta = np.clip(attacked - image.astype(np.float32), -limit, limit)
        return np.clip(image + delta, 0, 255).astype(np.uint8)
