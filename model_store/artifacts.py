"""A model artifact: safetensors weights, a JSON manifest, and an Ed25519 signature.

The manifest says what the model is (architecture, preprocessing, source,
metrics) and carries the sha256 of the weights; the signature covers the
manifest.  Nothing is ever unpickled: weights are safetensors, metadata is
JSON.  :meth:`Artifact.verified_state` is the only way to get tensors out,
and it checks the signature and the hash first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_store.errors import ModelStoreError, UntrustedModelError
from model_store.signing import Signer, Verifier

__all__ = ["MANIFEST", "SIGNATURE", "WEIGHTS", "Artifact"]

WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
_REQUIRED = ("architecture", "weights_sha256", "weights_bytes", "source")


@dataclass(frozen=True)
class Artifact:
    """Weights, their manifest, and who signed them (``signer`` is a key id)."""

    manifest: Mapping[str, Any]
    weights: bytes
    signature: bytes
    signer: str

    @classmethod
    def build(cls, manifest: Mapping[str, Any], weights: bytes, signer: Signer) -> Artifact:
        """Sign a new artifact; the weights' sha256 and size are added to the manifest."""
        full = {
            **manifest,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "weights_bytes": len(weights),
        }
        missing = [key for key in _REQUIRED if key not in full]
        if missing:
            raise ModelStoreError(f"a manifest needs {', '.join(missing)}")
        return cls(full, weights, signer.sign(full), signer.key_id)

    @classmethod
    def from_state(
        cls, manifest: Mapping[str, Any], state: Mapping[str, Any], signer: Signer
    ) -> Artifact:
        """Sign an artifact made from a torch state dict (saved as safetensors)."""
        from safetensors.torch import save

        tensors = {name: tensor.contiguous() for name, tensor in state.items()}
        return cls.build(manifest, save(tensors), signer)

    def verify(self, verifier: Verifier) -> None:
        """Raise :class:`UntrustedModelError` unless signature and weights hash check out."""
        if not self.signature:
            raise UntrustedModelError("the artifact is not signed")
        verifier.verify(self.manifest, self.signature, self.signer)
        digest = hashlib.sha256(self.weights).hexdigest()
        if digest != self.manifest.get("weights_sha256"):
            raise UntrustedModelError(
                f"the weights' sha256 {digest[:16]}… differs from the signed manifest's: "
                "the weights were changed after signing"
            )

    def verified_state(self, verifier: Verifier, device: str = "cpu") -> dict[str, Any]:
        """The weights as tensors, after :meth:`verify`."""
        from safetensors.torch import load

        self.verify(verifier)
        return {name: t.to(device) for name, t in load(self.weights).items()}

    def save(self, folder: Path) -> Path:
        """Write the three files into ``folder`` (created if needed)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / WEIGHTS).write_bytes(self.weights)
        (folder / MANIFEST).write_text(json.dumps(self.manifest, indent=2, sort_keys=True))
        (folder / SIGNATURE).write_text(
            json.dumps({"signer": self.signer, "signature": self.signature.hex()}, indent=2)
        )
        return folder

    @classmethod
    def load(cls, folder: Path) -> Artifact:
        """Read an artifact folder; it is *not* verified yet (call :meth:`verify`)."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            weights = (folder / WEIGHTS).read_bytes()
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelStoreError(f"{folder}: not a model artifact ({exc})") from exc
        try:
            sig = json.loads((folder / SIGNATURE).read_text())
            signature, signer = bytes.fromhex(sig["signature"]), str(sig["signer"])
        except FileNotFoundError:
            signature, signer = b"", ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelStoreError(f"{folder / SIGNATURE}: unreadable ({exc})") from exc
        return cls(manifest, weights, signature, signer)
