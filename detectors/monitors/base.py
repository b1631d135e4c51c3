"""The monitor plug-in contract: one small class per monitor, one ``score()``, explicit state.

A monitor watches one camera's frames, predictions, or both, and turns each
into a :class:`Score`; the framework (:mod:`streams.monitoring`) compares it
with the calibrated ``threshold``, publishes a ``signal/1`` event on
``pds.signals`` for every frame, and raises an alert when a monitor starts
alarming.  The framework keeps **one instance per camera**, so a monitor's
state is one camera's history and nothing else.

The lifecycle, and what each hook may do:

* ``__init__`` takes hyperparameters only (keyword arguments with defaults);
  no I/O, no model loading.
* :meth:`Monitor.score` runs for every observation, in order, in a worker
  thread; it may update state; it must not block on I/O.  Raising is a bug
  in the monitor: the framework records the frame's signal with reason
  ``monitor_error`` and an alarm, so a broken monitor fails closed.
* :meth:`Monitor.calibrate` sees clean footage of one camera and sets
  ``threshold`` for a target false-positive rate (``secmlops calibrate``).
* :meth:`Monitor.state` / :meth:`Monitor.restore` save and load everything
  (hyperparameters, calibration, online state) as plain JSON data, never
  pickles: calibrations are stored in Redis and must be safe to load.

Register a monitor under the entry-point group ``secmlops.detectors``; see
``docs/monitors.md`` for a complete example plug-in.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from streams.events import Frame, Prediction

__all__ = [
    "Consumes",
    "DetectFn",
    "Kind",
    "Monitor",
    "Observation",
    "Score",
    "Verdict",
    "prediction_boxes",
    "quantile_threshold",
]

Consumes = Literal["frames", "predictions", "both"]
Kind = Literal["integrity", "drift", "adversarial", "health"]
DetectFn = Callable[[list[np.ndarray]], list[np.ndarray]]
"""A batch of BGR images to ``(N, 5)`` detections each: the served model, for monitors that ask."""


@dataclass(frozen=True)
class Observation:
    """What a monitor sees of one frame; which fields are set depends on ``consumes``.

    ``signature`` is the keyring's verdict on the frame (``ok``,
    ``unsigned``, ``bad_signature``, ``unknown_key``).  ``image`` is the
    decoded BGR frame, present only for frames whose signature verified:
    untrusted pixels never reach a monitor that has ``verified_only`` set.
    ``received_ts_ns`` is when the record reached the broker.  ``delivery`` names
    the frame record (``partition:offset`` on ``pds.frames``; "" when not read from
    Kafka): the same record read again after a restart is the same delivery, a
    replayed frame is a new one with the same ``frame_id``.
    """

    camera_id: str
    frame_id: str
    seq: int
    capture_ts_ns: int
    received_ts_ns: int = 0
    signature: str = "ok"
    frame: Frame | None = None
    image: np.ndarray | None = None
    prediction: Prediction | None = None
    delivery: str = ""

    @classmethod
    def of_prediction(cls, prediction: Prediction, received_ts_ns: int = 0) -> Observation:
        """An observation of a prediction alone (for ``consumes = "predictions"``)."""
        return cls(
            camera_id=prediction.camera_id,
            frame_id=prediction.frame_id,
            seq=prediction.seq,
            capture_ts_ns=prediction.capture_ts_ns,
            received_ts_ns=received_ts_ns,
            prediction=prediction,
            delivery=prediction.delivery,
        )


@dataclass(frozen=True)
class Score:
    """A monitor's finding on one observation.

    ``value`` is compared with the threshold unless ``alarm`` decides
    explicitly (a drift monitor alarms when its change detector fires, not
    on one large value).  ``reason`` says why, in a few words, when it alarms.
    """

    value: float
    reason: str = ""
    alarm: bool | None = None


@dataclass(frozen=True)
class Verdict:
    """A score judged against the monitor's threshold: what goes into a ``signal/1`` event."""

    monitor: str
    score: float
    threshold: float
    alarm: bool
    reason: str = ""


def prediction_boxes(prediction: Prediction | None) -> np.ndarray:
    """A prediction's boxes as an ``(N, 5)`` float64 array of ``x1, y1, x2, y2, score``."""
    if prediction is None or not prediction.boxes:
        return np.zeros((0, 5), dtype=np.float64)
    return np.asarray(
        [(b.x1, b.y1, b.x2, b.y2, b.score) for b in prediction.boxes], dtype=np.float64
    )


def quantile_threshold(scores: Sequence[float], target_fpr: float, *, floor: float = 0.0) -> float:
    """The smallest threshold that at most ``target_fpr`` of ``scores`` exceed.

    With fewer than ``1 / target_fpr`` scores the empirical quantile is the
    maximum, so the threshold is the largest clean score: no clean frame of
    the calibration set alarms.

    >>> quantile_threshold([0.1, 0.2, 0.3, 0.4], 0.25)
    0.3
    >>> quantile_threshold([0.1, 0.2, 0.3, 0.4], 0.01)
    0.4
    """
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in (0, 1), got {target_fpr}")
    finite = np.sort(np.asarray([s for s in scores if math.isfinite(s)], dtype=np.float64))
    if finite.size == 0:
        raise ValueError("no finite scores to calibrate on")
    allowed = math.floor(target_fpr * finite.size)  # clean scores that may exceed
    return max(floor, float(finite[finite.size - 1 - allowed]))


class Monitor(abc.ABC):
    """Base class of every monitor; subclasses set the class variables and ``score``.

    Class variables
    ---------------
    name
        Registry key and the ``monitor`` field of its signals, e.g. ``"integrity"``.
    kind
        ``integrity``, ``drift``, ``adversarial`` or ``health``.
    consumes
        ``frames``, ``predictions`` or ``both`` (a frame joined with its prediction).
    verified_only
        Only see frames whose signature verified (default True).  A monitor
        that judges the signature itself sets it False and gets no pixels
        for unverified frames.
    needs_model
        The framework passes the served detector to :meth:`score_batch`.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    consumes: ClassVar[Consumes]
    verified_only: ClassVar[bool] = True
    needs_model: ClassVar[bool] = False
    #: hyperparameter names saved by :meth:`state` (set by subclasses)
    params: ClassVar[tuple[str, ...]] = ()
    #: the threshold used while uncalibrated (inf: alarm only when a score says so)
    default_threshold: float = math.inf

    def __init__(self, *, threshold: float = math.inf) -> None:
        self.threshold = float(threshold)
        self.reset()

    # --- the hooks a monitor implements ------------------------------------

    @abc.abstractmethod
    def score(self, observation: Observation) -> Score:
        """Score one observation and update the online state."""

    def reset(self) -> None:  # noqa: B027 - stateless monitors need not override it
        """Clear the online state; keep hyperparameters and calibration."""

    def calibration(self) -> dict[str, Any]:
        """Calibrated values beyond ``threshold`` (e.g. a baseline); JSON data."""
        return {}

    def load_calibration(self, data: Mapping[str, Any]) -> None:  # noqa: B027
        """Load what :meth:`calibration` returned."""

    def online_state(self) -> dict[str, Any]:
        """The state :meth:`score` builds up, as JSON data (default: none)."""
        return {}

    def load_online_state(self, data: Mapping[str, Any]) -> None:  # noqa: B027
        """Load what :meth:`online_state` returned."""

    # --- provided ----------------------------------------------------------

    def score_batch(
        self, observations: Sequence[Observation], detect: DetectFn | None = None
    ) -> list[Score]:
        """Score a batch in order; monitors that run a model override this to batch it."""
        return [self.score(observation) for observation in observations]

    @property
    def limit(self) -> float:
        """The threshold in use: the calibrated one, else ``default_threshold``."""
        return self.threshold if math.isfinite(self.threshold) else self.default_threshold

    def judge(self, score: Score) -> Verdict:
        """Turn a score into a verdict against the threshold in use."""
        value = score.value if math.isfinite(score.value) else 1e9
        alarm = value > self.limit if score.alarm is None else score.alarm
        threshold = self.limit if math.isfinite(self.limit) else 1e9
        return Verdict(self.name, value, threshold, bool(alarm), score.reason)

    def update(self, observation: Observation) -> Verdict:
        """Score one observation and judge it: the one call a simple user needs."""
        return self.judge(self.score(observation))

    def calibrate(
        self,
        clean: Iterable[Observation],
        target_fpr: float,
        detect: DetectFn | None = None,
        *,
        batch: int = 32,
    ) -> float:
        """Set ``threshold`` so that about ``target_fpr`` of clean observations alarm.

        The default scores the clean footage in order from a fresh state and
        takes the empirical quantile; the online state is reset afterwards.
        Monitors with a calibrated baseline override this.
        """
        self.reset()
        scores: list[float] = []
        pending: list[Observation] = []
        for observation in clean:
            pending.append(observation)
            if len(pending) >= batch:
                scores += [s.value for s in self.score_batch(pending, detect)]
                pending = []
        scores += [s.value for s in self.score_batch(pending, detect)] if pending else []
        self.threshold = quantile_threshold(scores, target_fpr)
        self.reset()
        return self.threshold

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild this monitor, as JSON-serialisable data."""
        return {
            "monitor": self.name,
            "params": {name: getattr(self, name) for name in self.params},
            "threshold": self.threshold if math.isfinite(self.threshold) else None,
            "calibration": self.calibration(),
            "online": self.online_state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`state` output; a state of another monitor is refused."""
        if state.get("monitor") != self.name:
            raise ValueError(f"state of {state.get('monitor')!r} given to {self.name!r}")
        for name, value in (state.get("params") or {}).items():
            if name in self.params:
                setattr(self, name, value)
        threshold = state.get("threshold")
        self.threshold = math.inf if threshold is None else float(threshold)
        self.reset()
        self.load_calibration(state.get("calibration") or {})
        self.load_online_state(state.get("online") or {})

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Monitor:
        """A new instance with ``state`` loaded."""
        monitor = cls()
        monitor.restore(state)
        return monitor

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.params)
        return (
            f"{type(self).__name__}({params}{', ' if params else ''}threshold={self.threshold:g})"
        )
