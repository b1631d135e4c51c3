"""Red-team drill: a deliberately degraded copy of a model version, signed like any other.

The threat it stands for is the one signatures cannot stop: a bad model that
went through the release process (a broken retraining run, a poisoned
dataset, an insider with the signing key).  Its artifact verifies; only its
behaviour gives it away, which is what the model-health monitor and the
rollback policy are for.  The drill promotes such a version mid-drive and
checks that the policy rolls it back (``docs/policy.md``).

Two ways to degrade, both deterministic:

* ``blind``: the detector's confidence is pushed down so it misses most
  pedestrians (HOG: the SVM bias; SSDLite and torchvision: every bias of the
  last classification layer);
* ``noise``: Gaussian noise on every weight, ``strength`` times each
  tensor's own standard deviation (a corrupted update).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from model_store.artifacts import Artifact
from model_store.signing import Signer, Verifier

__all__ = ["MODES", "degrade"]

MODES = ("blind", "noise")


def _blind(manifest: Mapping[str, Any], state: dict[str, torch.Tensor], strength: float) -> None:
    if manifest["architecture"].startswith("hog"):
        state["svm"] = state["svm"].clone()
        state["svm"][-1] -= strength  # every window scores lower
        return
    # The class logits' biases (not the depthwise ones before them): every class scores lower.
    heads = [
        k
        for k in state
        if k.endswith(("cls.bias", "class.bias", "cls_logits.bias", "classification.bias"))
    ]
    if not heads:
        raise ValueError(f"no classification bias found in {manifest['architecture']}")
    for key in heads:
        state[key] = state[key] - strength


def degrade(
    artifact: Artifact,
    verifier: Verifier,
    signer: Signer,
    *,
    mode: str = "blind",
    strength: float = 1.0,
    seed: int = 0,
) -> Artifact:
    """A signed, degraded copy of ``artifact`` (which is verified first)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if strength <= 0:
        raise ValueError(f"strength must be positive, got {strength}")
    state = artifact.verified_state(verifier)
    if mode == "blind":
        _blind(artifact.manifest, state, strength)
    else:
        generator = torch.Generator().manual_seed(seed)
        for key, tensor in state.items():
            if tensor.is_floating_point() and tensor.numel() > 1:
                noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
                state[key] = tensor + strength * tensor.std() * noise
    manifest = {
        k: v for k, v in artifact.manifest.items() if k not in ("weights_sha256", "weights_bytes")
    }
    manifest["description"] = f"RED-TEAM DRILL, do not serve: {manifest.get('description', '')}"
    manifest["red_team"] = {
        "mode": mode,
        "strength": strength,
        "seed": seed,
        "from_weights_sha256": artifact.manifest["weights_sha256"],
    }
    return Artifact.from_state(manifest, state, signer)
