"""Claim-checks: images too large for a Kafka message travel through Redis.

The frame event then carries ``image_ref`` and ``image_sha256``; the bytes
are stored under a content-addressed key with a TTL, and whoever reads them
back checks the digest, so a swapped or truncated image is detected.
"""

from __future__ import annotations

import hashlib

import redis

__all__ = ["ClaimCheckError", "fetch", "store"]

PREFIX = "secmlops:claim:"


class ClaimCheckError(RuntimeError):
    """The referenced image is gone (expired), unreachable, or not the one signed for."""


def store(client: redis.Redis, data: bytes, ttl_s: int) -> tuple[str, str]:
    """Store ``data``; returns ``(image_ref, image_sha256)`` for the frame event."""
    digest = hashlib.sha256(data).hexdigest()
    ref = PREFIX + digest
    client.set(ref, data, ex=ttl_s)
    return ref, digest


def fetch(client: redis.Redis, ref: str, sha256: str) -> bytes:
    """The bytes behind ``ref``, verified against ``sha256``."""
    if not ref.startswith(PREFIX):
        raise ClaimCheckError(f"{ref!r} is not a claim-check reference")
    try:
        data = client.get(ref)
    except redis.RedisError as exc:
        raise ClaimCheckError(f"Redis unreachable for {ref}: {exc}") from exc
    if data is None:
        raise ClaimCheckError(f"{ref} has expired or never existed")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ClaimCheckError(f"{ref}: the stored bytes do not match image_sha256")
    return data
