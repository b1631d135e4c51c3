"""Integrity of a camera's stream: signatures, sequence, timestamps, frozen images.

These checks need no model and almost no compute, and they are exact: a
frame either carries a valid signature or it does not; its ``seq`` either
follows the last one or it does not.  So the threshold is fixed (any
violation alarms) and calibration only tunes what "frozen" means for the
camera: how small the change between consecutive frames may get on clean
footage.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from detectors.monitors.base import DetectFn, Monitor, Observation, Score
from detectors.monitors.shrink import shrink_to

__all__ = ["StreamIntegrity", "thumbnail"]

_THUMB = (64, 36)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A 64×36 grey thumbnail: cheap to compare, blind to JPEG noise patterns."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return shrink_to(grey, _THUMB).astype(np.float32)


class StreamIntegrity(Monitor):
    """Flags unsigned or forged frames, gaps, replays, reordering, stale clocks and freezes.

    Score is the number of violations found on the frame; any violation
    alarms (threshold 0.5).  The reason lists them: ``unsigned``,
    ``bad_signature``, ``unknown_key``, ``gap:N`` (N frames missing before
    this one), ``replayed`` (a frame id seen before, or a sequence number far
    behind), ``out_of_order``, ``stale:S`` (captured S seconds before it
    reached the broker), ``future`` (captured after it reached the broker),
    ``frozen`` (the image did not change).

    A frame record read a second time (``Observation.delivery`` the same: after
    a crash, the records since the last commit are read again, and the state
    saved before may already hold them) is no replay: it gets the verdict it
    got the first time, and changes nothing.  A replay is a new record.

    Parameters
    ----------
    max_age_s
        Capture-to-broker delay beyond which a frame is stale.
    max_skew_s
        How far a capture time may be ahead of the broker's clock.
    frozen_mad
        Mean absolute difference (grey levels, on a 64×36 thumbnail) at or
        below which two consecutive frames count as the same image;
        calibration lowers it below what the camera shows on clean footage.
    memory
        How many recent frame ids (with their records and verdicts) are remembered to
        catch replays and recognise records read again.

    Examples
    --------
    >>> monitor = StreamIntegrity()
    >>> def seen(seq, signature="ok"):
    ...     obs = Observation("cam", f"{seq:032x}", seq, seq * 33_000_000,
    ...                       received_ts_ns=seq * 33_000_000, signature=signature)
    ...     return monitor.update(obs)
    >>> [seen(s).alarm for s in (0, 1, 2)]
    [False, False, False]
    >>> seen(5).reason
    'gap:2'
    >>> seen(3).reason
    'out_of_order'
    >>> seen(1).reason
    'replayed'
    >>> seen(6, signature="bad_signature").reason
    'bad_signature'
    """

    name = "integrity"
    kind = "integrity"
    consumes = "frames"
    verified_only = False
    params = ("max_age_s", "max_skew_s", "frozen_mad", "memory")

    def __init__(
        self,
        *,
        max_age_s: float = 10.0,
        max_skew_s: float = 2.0,
        frozen_mad: float = 1e-4,
        memory: int = 4096,
        threshold: float = 0.5,
    ) -> None:
        if max_age_s <= 0 or max_skew_s < 0 or frozen_mad < 0 or memory < 1:
            raise ValueError("max_age_s > 0, max_skew_s >= 0, frozen_mad >= 0, memory >= 1")
        self.max_age_s = max_age_s
        self.max_skew_s = max_skew_s
        self.frozen_mad = frozen_mad
        self.memory = memory
        super().__init__(threshold=threshold)

    def reset(self) -> None:
        self._last_seq: int | None = None
        self._last_ts = 0
        # Recent frame ids -> (the record they came in, the verdict it got), oldest first.
        self._seen: OrderedDict[str, tuple[str, Score]] = OrderedDict()
        self._thumb: np.ndarray | None = None

    def _remember(self, obs: Observation, verdict: Score) -> None:
        if obs.frame_id in self._seen:  # a replay: the first record stays the one known
            return
        self._seen[obs.frame_id] = (obs.delivery, verdict)
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)

    def _sequence(self, obs: Observation) -> list[str]:
        """Gap, replay and order checks; advances the camera's position on a fresh frame."""
        if obs.frame_id in self._seen:
            return ["replayed"]
        last = self._last_seq
        if last is None or obs.seq == last + 1:
            self._last_seq, self._last_ts = obs.seq, max(self._last_ts, obs.capture_ts_ns)
            return []
        if obs.seq > last + 1:
            self._last_seq, self._last_ts = obs.seq, max(self._last_ts, obs.capture_ts_ns)
            return [f"gap:{obs.seq - last - 1}"]
        if obs.seq <= last - self.memory:
            return ["replayed"]
        return ["out_of_order"]

    def _clock(self, obs: Observation) -> list[str]:
        if not obs.received_ts_ns:
            return []
        age = (obs.received_ts_ns - obs.capture_ts_ns) / 1e9
        if age > self.max_age_s:
            return [f"stale:{age:.0f}"]
        if -age > self.max_skew_s:
            return ["future"]
        return []

    def _frozen(self, obs: Observation) -> list[str]:
        if obs.image is None:
            return []
        thumb = thumbnail(obs.image)
        previous, self._thumb = self._thumb, thumb
        if previous is None or previous.shape != thumb.shape:
            return []
        return ["frozen"] if float(np.abs(thumb - previous).mean()) <= self.frozen_mad else []

    def score(self, observation: Observation) -> Score:
        known = self._seen.get(observation.frame_id)
        if known is not None and observation.delivery and known[0] == observation.delivery:
            return known[1]  # the same record read again: the same verdict, nothing new
        found = [] if observation.signature == "ok" else [observation.signature]
        found += self._sequence(observation) + self._clock(observation)
        if observation.signature == "ok":
            found += self._frozen(observation)
        verdict = Score(float(len(found)), ",".join(found))
        self._remember(observation, verdict)
        return verdict

    def calibrate(
        self,
        clean: Iterable[Observation],
        target_fpr: float,
        detect: DetectFn | None = None,
        *,
        batch: int = 32,
    ) -> float:
        """Lower ``frozen_mad`` below a quarter of the smallest change seen on clean footage.

        The other checks are exact; the threshold stays at 0.5 (any violation).
        """
        smallest, previous = np.inf, None
        for obs in clean:
            if obs.image is None:
                continue
            thumb = thumbnail(obs.image)
            if previous is not None and previous.shape == thumb.shape:
                smallest = min(smallest, float(np.abs(thumb - previous).mean()))
            previous = thumb
        if np.isfinite(smallest):
            self.frozen_mad = min(self.frozen_mad, smallest / 4)
        self.threshold = 0.5
        self.reset()
        return self.threshold

    def online_state(self) -> dict[str, Any]:
        return {
            "last_seq": self._last_seq,
            "last_ts": self._last_ts,
            # [frame id, record], with [score, reason] after them when the verdict alarmed.
            "ids": [
                [frame_id, delivery, *([v.value, v.reason] if v.value else [])]
                for frame_id, (delivery, v) in self._seen.items()
            ],
            "thumb": None if self._thumb is None else self._thumb.round(3).tolist(),
        }

    def load_online_state(self, data: Mapping[str, Any]) -> None:
        self._last_seq = data.get("last_seq")
        self._last_ts = int(data.get("last_ts") or 0)
        for entry in data.get("ids") or []:
            if isinstance(entry, str):  # saved before records were kept: no record known
                entry = [entry, ""]
            frame_id, delivery, *verdict = entry
            score = Score(float(verdict[0]), str(verdict[1])) if verdict else Score(0.0, "")
            self._seen[str(frame_id)] = (str(delivery), score)
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)
        thumb = data.get("thumb")
        self._thumb = None if thumb is None else np.asarray(thumb, dtype=np.float32)
