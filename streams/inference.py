"""The detector agent's work on one batch, as a plain synchronous function.

It runs inside the agent's one-thread executor, so it may block; it never
raises for a bad event (each gets a :class:`~streams.outcomes.Rejected`), and
a failure of the model itself rejects the frames of that batch only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from detectors.imaging import ImageError, decode_image, decode_jpegs
from detectors.models.base import Detector
from streams.claimcheck import ClaimCheckError
from streams.cpu_lanes import CpuLanes
from streams.events import Box, Frame, InvalidEvent, Prediction, Timing, decode
from streams.outcomes import Rejected
from streams.signing import Keyring

__all__ = ["ImageFetcher", "predict_batch"]

ImageFetcher = Callable[[str, str], bytes]
"""Returns the bytes of a claim-checked image given ``(image_ref, image_sha256)``."""


def _ms(start_ns: int, end_ns: int) -> float:
    return max(0.0, (end_ns - start_ns) / 1e6)


def _boxes(detections: np.ndarray) -> list[Box]:
    return [Box(*map(float, row)) for row in detections[:512]]


def predict_batch(
    detector: Detector,
    payloads: Sequence[bytes],
    received_ns: Sequence[int],
    *,
    keyring: Keyring | None = None,
    fetch_image: ImageFetcher | None = None,
    decode_device: str | None = None,
    part: int = 0,
    between: Callable[[], None] | None = None,
    lanes: CpuLanes | None = None,
) -> list[Prediction | Rejected]:
    """Decode, validate and run ``detector`` on a batch of raw frame records.

    Parameters
    ----------
    detector
        The model to run.
    payloads
        Raw ``pds.frames`` record values, untrusted.
    received_ns
        When each record reached the broker (its Kafka timestamp), for the
        queueing time in the prediction's timing breakdown.
    keyring
        Frame keys: a frame whose signature does not verify is rejected before
        its image is decoded (reason ``unsigned``, ``bad_signature`` or
        ``unknown_key``).  None skips the check (tests of the model only).
    fetch_image
        Resolves claim-checked images; without it such frames are rejected.
    decode_device
        Decode JPEGs with torchvision onto this device (``cuda``: nvJPEG) and
        hand the detector tensors, when it takes them (``detect_tensors``);
        None decodes with OpenCV on the CPU.
    part, between
        Run the model on ``part`` frames at a time (0: the whole batch at once) and
        call ``between()`` between the parts: the worker lets the waiting monitors'
        checks run there (:func:`streams.device_thread.let_ahead`).  The time spent
        in ``between`` is not counted as the frames' inference time.
    lanes
        Run the parts side by side on these lanes (:mod:`streams.cpu_lanes`); None runs
        them one after the other in the calling thread.

    Returns
    -------
    list
        One outcome per payload, in order.
    """
    start = time.time_ns()
    outcomes: list[Prediction | Rejected | None] = [None] * len(payloads)
    accepted: list[tuple[int, Frame, bytes]] = []
    for i, payload in enumerate(payloads):
        try:
            frame = decode(payload, Frame)
        except InvalidEvent as exc:
            outcomes[i] = Rejected(exc.reason, exc.detail)
            continue
        if keyring is not None:
            verdict = keyring.verify(frame)
            if verdict != "ok":
                outcomes[i] = Rejected(verdict, _WHY[verdict], frame.frame_id)
                continue
        try:
            accepted.append((i, frame, frame.image or _claimed(frame, fetch_image)))
        except ClaimCheckError as exc:
            outcomes[i] = Rejected("claim_check_failed", str(exc), frame.frame_id)
    on_device = decode_device is not None and hasattr(detector, "detect_tensors")
    frames: list[tuple[int, Frame]] = []
    images: list = []
    decoded = _decode(accepted, decode_device if on_device else None)
    for (i, frame, _), image in zip(accepted, decoded, strict=True):
        if isinstance(image, ImageError):
            outcomes[i] = Rejected("undecodable_image", str(image), frame.frame_id)
        else:
            frames.append((i, frame))
            images.append(image)
    decoded = time.time_ns()
    if frames:
        try:
            detect = detector.detect_tensors if on_device else detector.detect_batch  # type: ignore
            detections, between_ns = (lanes or _ONE_LANE).run(detect, images, part, between)
        except Exception as exc:
            for i, frame in frames:
                outcomes[i] = Rejected(
                    "inference_error", f"{type(exc).__name__}: {exc}", frame.frame_id
                )
            return outcomes  # type: ignore[return-value]
        inferred = time.time_ns() - between_ns
        per_frame_decode = _ms(start, decoded) / len(payloads)
        per_frame_infer = _ms(decoded, inferred) / len(frames)
        for (i, frame), boxes in zip(frames, detections, strict=True):
            outcomes[i] = _prediction(
                detector,
                frame,
                boxes,
                Timing(
                    queue_ms=_ms(received_ns[i], start),
                    decode_ms=per_frame_decode,
                    infer_ms=per_frame_infer,
                ),
            )
    return outcomes  # type: ignore[return-value]


_ONE_LANE = CpuLanes(1)

_WHY = {
    "unsigned": "the frame carries no signature; it was not inferred",
    "bad_signature": "the signature does not match the frame; it was not inferred",
    "unknown_key": "the frame names a signing key this worker does not have; it was not inferred",
}


def _decode(accepted: list[tuple[int, Frame, bytes]], device: str | None) -> list:
    """Pixels (arrays, or tensors on ``device``) or an ImageError, per accepted frame."""
    out: list = [None] * len(accepted)
    if device is not None:
        jpegs = [k for k, (_, frame, _) in enumerate(accepted) if frame.encoding == "jpeg"]
        sizes = [(accepted[k][1].width, accepted[k][1].height) for k in jpegs]
        decoded = decode_jpegs([accepted[k][2] for k in jpegs], sizes, device)
        for k, image in zip(jpegs, decoded, strict=True):
            out[k] = image
    for k, (_, frame, data) in enumerate(accepted):
        if out[k] is None:  # the CPU path, and PNG frames on the device path
            try:
                image = decode_image(data, width=frame.width, height=frame.height)
                out[k] = image if device is None else _to_tensor(image)
            except ImageError as exc:
                out[k] = exc
    return out


def _to_tensor(image: np.ndarray) -> object:
    import torch

    return torch.from_numpy(image).permute(2, 0, 1)


def _claimed(frame: Frame, fetch_image: ImageFetcher | None) -> bytes:
    if fetch_image is None:
        raise ClaimCheckError("this worker cannot resolve claim-checked images")
    return fetch_image(frame.image_ref, frame.image_sha256)


def _prediction(
    detector: Detector, frame: Frame, detections: np.ndarray, timing: Timing
) -> Prediction | Rejected:
    try:
        return Prediction(
            frame_id=frame.frame_id,
            camera_id=frame.camera_id,
            seq=frame.seq,
            capture_ts_ns=frame.capture_ts_ns,
            model=detector.name,
            model_version=detector.version,
            boxes=_boxes(detections),
            timing=timing,
            processed_ts_ns=time.time_ns(),
        )
    except (ValueError, TypeError) as exc:  # e.g. inverted or non-finite boxes
        return Rejected("invalid_output", f"the detector returned {exc}", frame.frame_id)
