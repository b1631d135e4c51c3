"""Frame authentication: per-camera HMAC-SHA256 keys derived from rotating master keys.

Why HMAC and per-camera keys: cameras and the replay tool share a secret with
the monitor, and a key stolen from one camera must not sign frames for
another.  Each master key (``key_id`` → secret) yields a camera's key as
``HMAC(master, "secmlops/frame/v1/" + camera_id)``, so operators manage a
few master secrets while every camera signs with its own key.  The signature
covers every field of the frame except itself, the image (or its sha256 for a
claim-checked image) included, so no header field and no pixel can change
unnoticed.

Keys come from the environment only: ``SECMLOPS_FRAME_KEY`` (hex or
base64, at least 16 bytes) with ``SECMLOPS_FRAME_KEY_ID`` (default ``k1``),
or ``SECMLOPS_FRAME_KEYS_FILE``, a JSON file ``{"active": "k2", "keys":
{"k1": "<hex>", "k2": "<hex>"}}`` for rotation (older keys keep verifying).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import stat
from collections.abc import Mapping
from typing import Literal

import msgspec

from streams.events import Frame
from streams.settings import Settings

__all__ = ["Keyring", "SigningKeyError", "Verdict", "generate_key", "signing_bytes"]

Verdict = Literal["ok", "unsigned", "unknown_key", "bad_signature"]
_encoder = msgspec.msgpack.Encoder()
_CONTEXT = b"secmlops/frame/v1/"
MIN_KEY_BYTES = 16


class SigningKeyError(ValueError):
    """Signing keys are missing or unusable; the message names the variable or file."""


def signing_bytes(frame: Frame) -> bytes:
    """The exact bytes a frame's signature covers: the frame encoded without its signature."""
    return _encoder.encode(msgspec.structs.replace(frame, signature=b""))


def _parse_secret(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SigningKeyError(f"{where}: a key must be hex or base64") from None
    if len(secret) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"{where}: a key needs at least {MIN_KEY_BYTES} bytes, got {len(secret)}"
        )
    return secret


def generate_key() -> str:
    """A fresh 32-byte master key, hex-encoded (for ``SECMLOPS_FRAME_KEY``)."""
    import secrets

    return secrets.token_hex(32)


class Keyring:
    """Master keys by id, and the one that signs new frames."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise SigningKeyError(f"the active key {active!r} is not among the keys {sorted(keys)}")
        self._keys = dict(keys)
        self.active = active
        self._camera_keys: dict[tuple[str, str], bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """Keys from ``SECMLOPS_FRAME_KEYS_FILE`` or ``SECMLOPS_FRAME_KEY``.

        Raises
        ------
        SigningKeyError
            When neither is set, or a key or the file is malformed.
        """
        if settings.frame_keys_file is not None:
            path = settings.frame_keys_file
            try:
                if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise SigningKeyError(
                        f"{path}: the key file must be readable by its owner only "
                        f"(chmod 600 {path})"
                    )
                doc = json.loads(path.read_text())
                keys = {
                    kid: _parse_secret(v, f"{path}: key {kid}") for kid, v in doc["keys"].items()
                }
                return cls(keys, doc["active"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                if isinstance(exc, SigningKeyError):
                    raise
                raise SigningKeyError(
                    f"SECMLOPS_FRAME_KEYS_FILE={path}: {exc!r}; expected "
                    '{"active": "k1", "keys": {"k1": "<hex>"}}'
                ) from None
        if settings.frame_key:
            secret = _parse_secret(settings.frame_key, "SECMLOPS_FRAME_KEY")
            return cls({settings.frame_key_id: secret}, settings.frame_key_id)
        raise SigningKeyError(
            "no frame signing key: set SECMLOPS_FRAME_KEY (e.g. "
            "'export SECMLOPS_FRAME_KEY=$(secmlops keys generate)') or SECMLOPS_FRAME_KEYS_FILE"
        )

    def camera_key(self, key_id: str, camera_id: str) -> bytes | None:
        """The camera's key under master ``key_id``, or None for an unknown key id."""
        cached = self._camera_keys.get((key_id, camera_id))
        if cached is None:
            master = self._keys.get(key_id)
            if master is None:
                return None
            cached = hmac.new(master, _CONTEXT + camera_id.encode(), hashlib.sha256).digest()
            self._camera_keys[(key_id, camera_id)] = cached
        return cached

    def sign(self, frame: Frame) -> Frame:
        """The frame, signed with the active key for its camera."""
        unsigned = msgspec.structs.replace(frame, key_id=self.active, signature=b"")
        key = self.camera_key(self.active, frame.camera_id)
        assert key is not None  # noqa: S101 - the active key always exists
        mac = hmac.new(key, signing_bytes(unsigned), hashlib.sha256).digest()
        return msgspec.structs.replace(unsigned, signature=mac)

    def verify(self, frame: Frame) -> Verdict:
        """Check a frame's signature in constant time."""
        if not frame.signature:
            return "unsigned"
        key = self.camera_key(frame.key_id, frame.camera_id)
        if key is None:
            return "unknown_key"
        expected = hmac.new(key, signing_bytes(frame), hashlib.sha256).digest()
        return "ok" if hmac.compare_digest(expected, frame.signature) else "bad_signature"
