"""Ed25519 signatures on model artifacts: who built this model, and is it unchanged?

Why Ed25519 and not the frames' HMAC: a model is signed once, by whoever
builds it, and verified by every worker; workers must be able to verify
without being able to sign.  The signature covers the artifact's manifest,
which holds the sha256 of the weights file, so weights and metadata are
bound together.

Keys come from the environment only.  ``SECMLOPS_MODEL_SIGNING_KEY`` holds
the private key (hex of the 32-byte seed) of whoever registers models;
``SECMLOPS_MODEL_TRUSTED_KEYS`` lists the public keys (hex, comma-separated)
that workers accept.  ``secmlops models keygen`` makes a pair.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from model_store.errors import ModelStoreError, UntrustedModelError
from streams.settings import Settings

__all__ = [
    "KeyPair",
    "Signer",
    "Verifier",
    "canonical",
    "key_id",
    "new_key_pair",
    "throwaway_keys",
]


def canonical(manifest: Mapping[str, object]) -> bytes:
    """The exact bytes a manifest signature covers: sorted, compact JSON."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(_raw_public(public)).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    private_hex: str
    public_hex: str


def new_key_pair() -> KeyPair:
    """A fresh Ed25519 key pair, hex-encoded for the two environment variables."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return KeyPair(seed.hex(), _raw_public(private.public_key()).hex())


class Signer:
    """Signs manifests with one private key."""

    def __init__(self, private_hex: str) -> None:
        try:
            self._key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex.strip()))
        except ValueError as exc:
            raise ModelStoreError(
                "SECMLOPS_MODEL_SIGNING_KEY must be the hex of a 32-byte Ed25519 seed "
                "('secmlops models keygen' makes one)"
            ) from exc
        self.key_id = key_id(self._key.public_key())
        self.public_hex = _raw_public(self._key.public_key()).hex()

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        if not settings.model_signing_key:
            raise ModelStoreError(
                "signing a model needs SECMLOPS_MODEL_SIGNING_KEY ('secmlops models keygen')"
            )
        return cls(settings.model_signing_key)

    def sign(self, manifest: Mapping[str, object]) -> bytes:
        return self._key.sign(canonical(manifest))


class Verifier:
    """Checks manifest signatures against a set of trusted public keys."""

    def __init__(self, public_hexes: list[str]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for text in public_hexes:
            try:
                public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
            except ValueError as exc:
                raise ModelStoreError(f"not an Ed25519 public key in hex: {text!r}") from exc
            self._keys[key_id(public)] = public

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier:
        keys = list(settings.model_trusted_keys)
        if not keys:
            raise ModelStoreError(
                "no trusted model keys: set SECMLOPS_MODEL_TRUSTED_KEYS to the public key(s) "
                "that sign your models ('secmlops models keygen')"
            )
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, manifest: Mapping[str, object], signature: bytes, signer: str) -> None:
        """Raise :class:`UntrustedModelError` unless ``signer`` is trusted and signed this."""
        public = self._keys.get(signer)
        if public is None:
            raise UntrustedModelError(
                f"signed by key {signer}, which is not trusted (trusted: {', '.join(self.key_ids)})"
            )
        try:
            public.verify(signature, canonical(manifest))
        except InvalidSignature:
            raise UntrustedModelError(
                "the manifest signature does not verify: the artifact was changed after signing"
            ) from None


def throwaway_keys() -> dict[str, str]:
    """Fresh frame and model keys as ``SECMLOPS_*`` variables, for tests, benchmarks, demos."""
    from streams.signing import generate_key

    pair = new_key_pair()
    return {
        "SECMLOPS_FRAME_KEY": generate_key(),
        "SECMLOPS_MODEL_SIGNING_KEY": pair.private_hex,
        "SECMLOPS_MODEL_TRUSTED_KEYS": pair.public_hex,
    }
