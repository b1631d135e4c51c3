"""Monitor calibrations in Redis, versioned with the model they were measured under.

A calibration is a monitor's saved state (threshold, baseline,
hyperparameters; no online state) for one camera, measured on clean
footage by ``secmlops calibrate`` while a given model version served.  It is
stored under ``secmlops:calibration:<model>:<version>`` as one hash field
``<monitor>@<camera>`` per pair, plus ``_meta`` (when, by whom, on what).
Workers load the calibrations of the version that serves; a new version
without its own calibration keeps the previous version's, with a warning.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis

from streams.monitoring import MonitorBank

if TYPE_CHECKING:
    from model_store.registry import Registry
    from streams.settings import Settings

__all__ = ["CALIBRATION_REFRESH_S", "DEFAULT_TARGET_FPR", "CalibrationStore", "calibrate_served"]

#: The target false-positive rate of the demo, the evaluation and the benchmarks.
DEFAULT_TARGET_FPR = 0.0025

#: How often workers re-read the stored calibrations (seconds).
CALIBRATION_REFRESH_S = 10.0

log = logging.getLogger(__name__)
_PREFIX = "secmlops:calibration:"


class CalibrationStore:
    """Reads and writes calibrations for one model name."""

    def __init__(self, client: redis.Redis, model: str) -> None:
        self.client = client
        self.model = model

    def _key(self, version: str) -> str:
        return f"{_PREFIX}{self.model}:{version}"

    def save(
        self,
        version: str,
        states: Mapping[str, Mapping[str, Mapping[str, Any]]],
        meta: Mapping[str, Any],
    ) -> int:
        """Store ``states[monitor][camera]`` for ``version``; returns the number of pairs."""
        fields = {
            f"{monitor}@{camera}": json.dumps(state, sort_keys=True)
            for monitor, cameras in states.items()
            for camera, state in cameras.items()
        }
        fields["_meta"] = json.dumps({**meta, "ts": time.time()}, sort_keys=True)
        self.client.hset(self._key(version), mapping=fields)
        return len(fields) - 1

    def load(self, version: str) -> dict[str, dict[str, dict[str, Any]]]:
        """``{monitor: {camera: state}}`` for ``version`` (empty when never calibrated)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for raw_field, raw in self.client.hgetall(self._key(version)).items():
            field = raw_field.decode()
            if field == "_meta":
                continue
            monitor, _, camera = field.partition("@")
            try:
                state = json.loads(raw)
            except ValueError:
                log.error(
                    "calibration %s of %s@%s is not JSON; ignored", field, self.model, version
                )
                continue
            out.setdefault(monitor, {})[camera] = state
        return out

    def meta(self, version: str) -> dict[str, Any] | None:
        raw = self.client.hget(self._key(version), "_meta")
        return None if raw is None else json.loads(raw)

    def versions(self) -> list[str]:
        """Model versions that have a calibration."""
        prefix = self._key("")
        return sorted(k.decode()[len(prefix) :] for k in self.client.scan_iter(prefix + "*"))

    def refresh(
        self, bank: MonitorBank, active: Callable[[str], str | None], current: str | None
    ) -> str | None:
        """Load the served version's calibration into ``bank`` when it changed.

        ``current`` is the token this returned last time (version and
        calibration time), so a re-run of ``secmlops calibrate`` is picked up
        too.  Redis being unreachable keeps the current calibration.
        """
        try:
            version = active(self.model)
            meta = self.meta(version) if version is not None else None
            token = f"{version}@{meta['ts']}" if meta else None
            if token is None or token == current:
                if version is not None and meta is None and current is None:
                    log.warning(
                        "%s: no calibration for %s@%s yet; running on defaults "
                        "(run `secmlops calibrate`)",
                        bank.name,
                        self.model,
                        version,
                    )
                return current if token is None else token
            states = self.load(version).get(bank.name, {})  # type: ignore[arg-type]
        except redis.RedisError as exc:
            log.warning("calibration refresh failed (%s); keeping the current one", exc)
            return current
        if states:
            bank.recalibrate(states)
            log.info("%s: loaded the calibration of %s@%s", bank.name, self.model, version)
        return token


def calibrate_served(
    settings: Settings,
    registry: Registry,
    frames: Iterable[Any],
    *,
    total: int | None,
    meta: Mapping[str, Any],
    version: str | None = None,
    target_fpr: float = DEFAULT_TARGET_FPR,
    progress: bool = True,
) -> tuple[str, dict[str, dict[str, dict[str, Any]]]]:
    """Calibrate every enabled monitor for a version (default: the served one) and store it.

    What ``secmlops calibrate`` does, for callers that already hold the
    frames (``producers.sources.SourceFrame``): the demo, the evaluation and
    the benchmarks.  Returns the version and the states saved.
    """
    from detectors.monitors.registry import select
    from model_store.catalog import build_detector
    from streams.offline import calibrate_monitors, record_footage

    version = version or registry.active(settings.model_name)
    artifact = registry.artifact(settings.model_name, version)
    detector = build_detector(artifact, registry.verifier, version=version)
    footage = record_footage(frames, detector, total=total, progress=progress)
    classes = select(settings.monitors)
    states = calibrate_monitors(classes, footage, target_fpr, detector.detect_batch)
    store = CalibrationStore(registry.client, settings.model_name)
    store.save(version, states, {"target_fpr": target_fpr, **meta})
    return version, states
