"""Monitors on recorded footage, without Kafka: for calibration and quality measurements.

The frames go through the same JPEG round trip a replay would give them and
the same detector a worker would run, so a threshold set here holds on the
stream.  Encoded frames are kept (not decoded images), so an hour of
footage fits in memory, and each monitor's pass decodes again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from detectors.imaging import decode_image, encode_image
from detectors.models.base import Detector
from detectors.monitors.base import DetectFn, Monitor, Observation
from streams.events import Box, Prediction, Timing, new_id

__all__ = ["Footage", "calibrate_monitors", "record_footage"]

_FRAME_NS = 33_366_667


@dataclass
class Footage:
    """One camera's clean frames, encoded, with the detector's predictions."""

    camera_id: str
    encoding: str = "jpeg"
    frames: list[tuple[str, int, bytes, int, int]] = field(default_factory=list)
    predictions: list[Prediction | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def observations(self, every: int = 1) -> Iterator[Observation]:
        """The frames as observations (decoded afresh), with their predictions."""
        for i in range(0, len(self.frames), every):
            frame_id, ts, data, width, height = self.frames[i]
            yield Observation(
                camera_id=self.camera_id,
                frame_id=frame_id,
                seq=i,
                capture_ts_ns=ts,
                received_ts_ns=ts,
                image=decode_image(data, width=width, height=height),
                prediction=self.predictions[i],
            )


def _prediction(
    detector: Detector, camera: str, frame_id: str, seq: int, ts: int, boxes: Any
) -> Prediction:
    return Prediction(
        frame_id=frame_id,
        camera_id=camera,
        seq=seq,
        capture_ts_ns=ts,
        model=detector.name,
        model_version=detector.version,
        boxes=[Box(*map(float, row)) for row in np.asarray(boxes)[:512]],
        timing=Timing(),
        processed_ts_ns=ts,
    )


def record_footage(
    frames: Iterable[Any],
    detector: Detector | None,
    *,
    encoding: str = "jpeg",
    quality: int = 90,
    batch: int = 16,
    total: int | None = None,
    progress: bool = True,
) -> dict[str, Footage]:
    """Encode source frames (``producers.sources.SourceFrame``) and run ``detector`` on them."""
    footage: dict[str, Footage] = {}
    pending: list[tuple[Footage, int, np.ndarray]] = []

    def flush() -> None:
        if detector is not None and pending:
            results = detector.detect_batch([image for _, _, image in pending])
            for (cam, i, _), boxes in zip(pending, results, strict=True):
                frame_id, ts = cam.frames[i][:2]
                cam.predictions[i] = _prediction(detector, cam.camera_id, frame_id, i, ts, boxes)
        pending.clear()

    for source_frame in tqdm(
        frames, total=total, unit="frame", desc="record", disable=not progress
    ):
        cam = footage.setdefault(source_frame.camera_id, Footage(source_frame.camera_id, encoding))
        data = encode_image(source_frame.image, encoding, quality)
        height, width = source_frame.image.shape[:2]
        ts = source_frame.media_ns or len(cam) * _FRAME_NS
        cam.frames.append((new_id(), ts, data, width, height))
        cam.predictions.append(None)
        pending.append((cam, len(cam) - 1, decode_image(data, width=width, height=height)))
        if len(pending) >= batch:
            flush()
    flush()
    return footage


def calibrate_monitors(
    classes: Sequence[type[Monitor]],
    footage: Mapping[str, Footage],
    target_fpr: float,
    detect: DetectFn | None = None,
    *,
    on_done: Callable[[str, str, Monitor], None] | None = None,
    skipped: dict[str, str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Calibrate every monitor on every camera's footage: ``{monitor: {camera: state}}``.

    ``params`` (``{monitor: {param: value}}``, e.g. from
    :func:`detectors.monitors.registry.parse_params`) go to the monitors'
    constructors; the states carry them to the workers.

    A monitor that needs predictions is skipped for footage recorded
    without a detector; one that needs the model is skipped without ``detect``;
    one whose ``calibrate`` raises ``ValueError`` (e.g. too little footage) is
    skipped for that camera, and ``skipped["monitor@camera"]`` says why.
    """
    states: dict[str, dict[str, dict[str, Any]]] = {}
    for cls in classes:
        if cls.needs_model and detect is None:
            continue
        for camera, cam in footage.items():
            if cls.consumes != "frames" and any(p is None for p in cam.predictions):
                continue
            monitor = cls(**(params or {}).get(cls.name, {}))
            try:
                monitor.calibrate(cam.observations(), target_fpr, detect)
            except ValueError as exc:
                if skipped is not None:
                    skipped[f"{cls.name}@{camera}"] = str(exc)
                continue
            monitor.reset()
            states.setdefault(cls.name, {})[camera] = {**monitor.state(), "online": {}}
            if on_done is not None:
                on_done(cls.name, camera, monitor)
    return states
