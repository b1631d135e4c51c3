"""The model a worker serves: loaded from the signed registry, swapped between batches.

The detector agent asks :meth:`ModelServer.current` before every batch.  It
re-reads the registry's active pointer (and the canary, which runs in shadow:
:attr:`ModelServer.shadow`) at most every ``poll_s`` seconds, or at once after
:meth:`poke` (called when a promote or rollback arrives on
``pds.control``), and when the pointer moved it loads, verifies and builds the
new version before the next batch: a batch is always processed by exactly one
version, and every prediction records which.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from detectors.models.base import Detector, warm_up
from model_store.catalog import build_detector
from model_store.errors import ModelStoreError
from model_store.registry import Registry

__all__ = ["ModelServer", "Served", "resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Served:
    version: str
    detector: Detector


class ModelServer:
    """Keeps the active version of one model loaded; thread-safe for one executor thread."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        *,
        device: str = "cpu",
        half: bool = False,
        batch: int | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.registry = registry
        self.name = name
        self.device = device
        self.half = half and device.startswith("cuda")
        # On a GPU the model takes the worker's whole batch at once (SSDLite alone chunked
        # it at 64, so SECMLOPS_WORKER_BATCH_SIZE=256 gave the card batches of 64); on a CPU
        # each model keeps its own, smaller chunks, which stay in the cache.
        self.batch = batch if device.startswith("cuda") else None
        self.poll_s = poll_s
        self._served: Served | None = None
        self._shadow: Served | None = None
        self._checked = 0.0
        self._refused: str | None = None
        self._poked = threading.Event()

    def poke(self) -> None:
        """Check the registry before the next batch (a control message arrived)."""
        self._poked.set()

    def current(self) -> Served:
        """The detector for the next batch, swapping first if the active version moved.

        Raises
        ------
        ModelStoreError
            No active version, or it fails verification, at the first load.  A
            failed swap later keeps the current model, logs the error and is not
            retried until the pointer moves again; an unreachable registry keeps
            the current model too.
        """
        now = time.monotonic()
        if (
            self._served is not None
            and not self._poked.is_set()
            and now - self._checked < self.poll_s
        ):
            return self._served
        self._poked.clear()
        self._checked = now
        try:
            active = self.registry.active(self.name)
        except redis.RedisError:
            if self._served is None:
                raise
            log.warning(
                "registry unreachable; %s@%s keeps serving", self.name, self._served.version
            )
            return self._served
        if active is None:
            raise ModelStoreError(
                f"no active version of model {self.name!r}: run 'secmlops models setup' "
                "or 'secmlops models promote VERSION'"
            )
        self._refresh_shadow()
        if self._served is None or (active != self._served.version and active != self._refused):
            try:
                self._served = self._load(active)
            except ModelStoreError:
                if self._served is None:
                    raise
                self._refused = active  # not retried until the pointer moves again
                log.exception(
                    "cannot swap to %s@%s; keeping %s", self.name, active, self._served.version
                )
        return self._served

    @property
    def shadow(self) -> Served | None:
        """The canary version's detector while a canary runs (kept fresh by :meth:`current`)."""
        return self._shadow

    def _refresh_shadow(self) -> None:
        canary = self.registry.canary(self.name)
        version = canary["version"] if canary else None
        if version is None:
            self._shadow = None
        elif self._shadow is None or self._shadow.version != version:
            try:
                self._shadow = self._load(version)
            except ModelStoreError:
                log.exception("cannot load the canary %s@%s; no shadow runs", self.name, version)
                self._shadow = None

    def _load(self, version: str) -> Served:
        t0 = time.perf_counter()
        artifact = self.registry.artifact(self.name, version)
        detector = build_detector(
            artifact,
            self.registry.verifier,
            version=version,
            device=self.device,
            half=self.half,
            max_batch=self.batch,
        )
        warmed = warm_up(detector)  # on CUDA: every batch shape now, not on a frame's time
        log.info(
            "serving %s@%s (%s) on %s, loaded in %.2f s (%.2f s of it warming up)",
            self.name,
            version,
            artifact.manifest["architecture"],
            self.device,
            time.perf_counter() - t0,
            warmed,
        )
        return Served(version, detector)
