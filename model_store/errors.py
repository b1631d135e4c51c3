"""Errors of the model store, each with a message that says what to do."""

from __future__ import annotations

__all__ = [
    "ModelNotFoundError",
    "ModelStoreError",
    "StaleRollbackError",
    "UntrustedModelError",
]


class ModelStoreError(RuntimeError):
    """Something about a model artifact or the registry is wrong; the message says what."""


class UntrustedModelError(ModelStoreError):
    """An artifact is unsigned, signed by an untrusted key, or changed after signing."""


class ModelNotFoundError(ModelStoreError):
    """No such model or version in the registry."""


class StaleRollbackError(ModelStoreError):
    """A rollback judged one version, but another one serves by now."""
