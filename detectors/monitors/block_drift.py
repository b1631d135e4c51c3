"""The block-drift engine behind the drift monitors (:mod:`detectors.monitors.drift`).

Consecutive video frames are strongly correlated, so per-frame values fed
raw to change detectors that assume independent samples raise a storm of
false alarms.  Each monitor reduces a frame to a few named features,
averages them over non-overlapping blocks of ``block`` frames, standardises
each block mean against a clean baseline and feeds it to river's
PageHinkley, ADWIN and KSWIN.  An alarm needs, on one feature, a firing of
one of the three within the last few blocks *and* a mean deviation of the
last ``recent`` blocks above the threshold.  Hysteresis (an episode lasts
until every deviation is below ``release * threshold``) and a refractory
``cooldown`` make one shift one alarm episode.  The refractory period holds
only the features, each in its direction, that took part in the episode:
a different change soon after (contrast falling after a brightness shift,
sharpness rising after a blur) starts an episode of its own.  With one
refractory period for the whole monitor, a drill of six shifts 50 frames
apart saw only two of them (docs/eval.md).  The baseline keeps one
scale per direction (from the upper and lower semi-variances): footage
gets darker (shade, tunnels) far more often than brighter.

ADWIN keeps its state in a compiled helper only pickle can save, so the
online state keeps the values fed to the detectors since they were built
(at most ``memory``; then they are rebuilt from the newest half), and
:meth:`load_online_state` rebuilds them by replaying those values.
"""

from __future__ import annotations

import abc
import copy
import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from river import drift

from detectors.monitors.base import DetectFn, Monitor, Observation, Score
from detectors.monitors.base import quantile_threshold as _quantile

__all__ = ["BlockDrift"]

log = logging.getLogger(__name__)

_HOLD = 6  # blocks a river detector's firing stays valid as evidence
_MIN_THRESHOLD = 5.0  # sd; a calibration never sets the threshold below it
_CLIP = 50.0  # sd; standardised values fed to the detectors are clipped to it
_PLAIN = ("frames", "sums", "warm", "learned", "fed", "latch", "alarming", "quiet", "episode")


def _fit(blocks: Mapping[str, Sequence[float]], floors: Mapping[str, float]) -> dict:
    """Per feature: mean, scale below and scale above (from semi-variances), floored."""
    baseline = {}
    for name, values in blocks.items():
        if len(values) < 3:
            continue  # too few blocks to judge this feature: it is not monitored
        x = np.asarray(values, dtype=np.float64)
        mean, sd = float(x.mean()), float(x.std())
        floor = max(floors.get(name, 1e-6), 0.5 * sd)
        down = math.sqrt(2 * float(np.mean(np.clip(mean - x, 0, None) ** 2)))
        up = math.sqrt(2 * float(np.mean(np.clip(x - mean, 0, None) ** 2)))
        baseline[name] = [mean, max(down, floor), max(up, floor)]
    return baseline


def _way(name: str, deviation: float) -> str:
    """A feature and the direction it moved: what a refractory period holds."""
    return f"{name} {'up' if deviation > 0 else 'down'}"


def _standardise(value: float, mean: float, down: float, up: float) -> float:
    z = (value - mean) / (up if value > mean else down)
    return min(_CLIP, max(-_CLIP, z))


class BlockDrift(Monitor):
    """The shared engine: block means, baseline, river detectors, episodes."""

    kind = "drift"
    features: ClassVar[tuple[str, ...]]
    #: What the features are computed as; raised when that changes, so that a baseline
    #: or a saved state made under another definition is not compared with new values.
    feature_version: ClassVar[int] = 1
    floors: ClassVar[dict[str, float]]  # the smallest scale of each feature, in its units
    params = ("block", "recent", "warmup", "margin", "release", "cooldown", "memory")
    default_margin = 1.5  # calibration's factor on the clean quantile, unless given
    params += ("default_threshold", "seed")

    def __init__(
        self,
        *,
        block: int = 5,
        recent: int = 2,
        warmup: int = 120,
        margin: float | None = None,
        release: float = 0.5,
        cooldown: int = 30,
        memory: int = 200,
        default_threshold: float = 5.0,
        seed: int = 0,
        threshold: float = math.inf,
    ) -> None:
        if min(block, recent, warmup) < 1 or cooldown < 0 or memory < 20:
            raise ValueError("block, recent, warmup >= 1, cooldown >= 0 and memory >= 20")
        margin = self.default_margin if margin is None else margin
        if margin < 1.0 or not 0.0 < release <= 1.0 or default_threshold <= 0.0:
            raise ValueError("margin >= 1, 0 < release <= 1 and default_threshold > 0")
        self.block, self.recent, self.warmup = block, recent, warmup
        self.margin, self.release, self.cooldown = margin, release, cooldown
        self.memory, self.default_threshold, self.seed = memory, default_threshold, seed
        self._calibrated: dict[str, list[float]] = {}
        super().__init__(threshold=threshold)

    @abc.abstractmethod
    def features_of(self, observation: Observation) -> dict[str, float]:
        """The frame's feature values (NaN: not defined for this frame)."""

    # --- state -------------------------------------------------------------

    def reset(self) -> None:
        """Clear the online state (a bootstrapped baseline too); keep the calibration."""
        self._frames = 0
        self._sums = {name: [0.0, 0] for name in self.features}
        self._warm: dict[str, list[float]] = {name: [] for name in self.features}
        self._learned: dict[str, list[float]] = {}
        self._fed: dict[str, list[float]] = {name: [] for name in self.features}
        self._recent = {name: deque(maxlen=self.recent) for name in self.features}
        self._latch = dict.fromkeys(self.features, 0)
        self._alarming = False
        self._quiet: dict[str, int] = {}  # "feature up|down" -> blocks left in its refractory
        self._episode: list[str] = []  # the "feature up|down" of the episode under way
        self._last = Score(0.0, "", False)
        self._detectors = {name: self._build(name, []) for name in self.features}

    def _build(self, name: str, values: Sequence[float]) -> tuple:
        detectors = (
            drift.PageHinkley(min_instances=5, delta=0.5, threshold=8.0, mode="both"),
            drift.ADWIN(delta=0.002, clock=1, min_window_length=3, grace_period=5),
            drift.KSWIN(alpha=0.005, window_size=40, stat_size=10, seed=self.seed),
        )
        for value in values:
            for detector in detectors:
                detector.update(value)
        self._fed[name] = list(values)
        return detectors

    def calibration(self) -> dict[str, Any]:
        """The clean baseline: per feature ``[mean, scale_down, scale_up]`` of block means."""
        return {
            "baseline": {k: list(v) for k, v in self._calibrated.items()},
            "feature_version": self.feature_version,
        }

    def load_calibration(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`calibration` returned.  A baseline of other features (made
        before they changed) is not loaded, and the threshold fitted with it is dropped:
        the monitor runs uncalibrated, learning its baseline, until calibrated again."""
        baseline = data.get("baseline") or {}
        made_with = data.get("feature_version", 1)
        if baseline and made_with != self.feature_version:
            log.warning(
                "%s: the calibration was made with version %s of its features, this is "
                "version %s; running uncalibrated until 'secmlops calibrate' is run again",
                self.name,
                made_with,
                self.feature_version,
            )
            self._calibrated, self.threshold = {}, math.inf
            return
        self._calibrated = {k: [float(x) for x in v] for k, v in baseline.items()}

    def online_state(self) -> dict[str, Any]:
        """Block sums, bootstrap, detector inputs, recent deviations, episode; JSON data."""
        state = {k: copy.deepcopy(getattr(self, f"_{k}")) for k in _PLAIN}
        return state | {
            "recent": {k: list(v) for k, v in self._recent.items()},
            "last": [self._last.value, self._last.reason],
            "feature_version": self.feature_version,
        }

    def load_online_state(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`online_state` returned, replaying the detectors' inputs.

        Raises
        ------
        ValueError
            For a state saved with another version of the features (the monitor
            bank then starts the camera afresh).
        """
        if not data:
            return
        if data.get("feature_version", 1) != self.feature_version:
            raise ValueError(
                f"{self.name}: state saved with version {data.get('feature_version', 1)} of "
                f"its features, this is version {self.feature_version}"
            )
        for k in _PLAIN:
            setattr(self, f"_{k}", copy.deepcopy(data.get(k)))
        if not isinstance(self._quiet, dict):  # saved before refractory periods per feature
            ways = [_way(f, d) for f in self.features for d in (1.0, -1.0)]
            self._quiet = dict.fromkeys(ways, int(self._quiet or 0))
        self._episode = list(self._episode or [])
        self._recent = {k: deque(v, maxlen=self.recent) for k, v in data["recent"].items()}
        self._last = Score(data["last"][0], data["last"][1], self._alarming)
        self._detectors = {k: self._build(k, self._fed.get(k, [])) for k in self.features}

    # --- scoring -----------------------------------------------------------

    def score(self, observation: Observation) -> Score:
        """Score one frame: the features' deviation as of the last full block."""
        return self.update_features(self.features_of(observation))

    def update_features(self, values: Mapping[str, float]) -> Score:
        """Add one frame's features; the engine's per-frame entry point (no pixels needed).

        The value is the largest absolute mean deviation, in baseline
        standard deviations, over the last ``recent`` blocks; it changes once
        per block.  ``alarm`` is True for the whole drift episode.
        """
        for name in self.features:
            value = values.get(name, math.nan)
            if math.isfinite(value):
                self._sums[name][0] += value
                self._sums[name][1] += 1
        self._frames += 1
        if self._frames >= self.block:
            self._end_block()
        return self._last

    def _end_block(self) -> None:
        means = {k: s / n for k, (s, n) in self._sums.items() if n}
        self._frames, self._sums = 0, {name: [0.0, 0] for name in self.features}
        baseline = self._calibrated or self._learned
        if not baseline:  # uncalibrated: bootstrap a baseline from the first blocks
            for name, mean in means.items():
                self._warm[name].append(mean)
            if max(len(v) for v in self._warm.values()) >= self.warmup:
                self._learned = _fit(self._warm, self.floors)
                self._warm = {name: [] for name in self.features}
            return
        for name, mean in means.items():
            if name not in baseline:
                continue
            z = _standardise(mean, *baseline[name])
            self._recent[name].append(z)
            self._fed[name].append(z)
            self._latch[name] = max(0, self._latch[name] - 1)
            for detector in self._detectors[name]:
                detector.update(z)
                if detector.drift_detected:
                    self._latch[name] = _HOLD
            if len(self._fed[name]) > self.memory:
                self._detectors[name] = self._build(name, self._fed[name][-(self.memory // 2) :])
        self._judge_block()

    def _judge_block(self) -> None:
        limit = self.limit
        deviation = {k: sum(v) / len(v) for k, v in self._recent.items() if v}
        worst = max((abs(d) for d in deviation.values()), default=0.0)
        if self._alarming:
            taking_part = [_way(k, d) for k, d in deviation.items() if abs(d) > limit]
            self._episode += [w for w in taking_part if w not in self._episode]
            if worst <= self.release * limit:
                self._quiet.update(dict.fromkeys(self._episode, self.cooldown))
                self._alarming, self._episode = False, []
        else:
            self._quiet = {w: n - 1 for w, n in self._quiet.items() if n > 1}
            confirmed = [
                _way(k, d)
                for k, d in deviation.items()
                if abs(d) > limit and self._latch[k] and _way(k, d) not in self._quiet
            ]
            self._alarming, self._episode = bool(confirmed), confirmed
        reason = ""
        if self._alarming:
            shown = sorted(deviation.items(), key=lambda kv: -abs(kv[1]))
            reason = ", ".join(
                f"{k} {'up' if d > 0 else 'down'} {abs(d):.1f} sd"
                for k, d in shown
                if abs(d) > self.release * limit
            )
        self._last = Score(worst, reason, self._alarming)

    # --- calibration -------------------------------------------------------

    def calibrate(
        self,
        clean: Iterable[Observation],
        target_fpr: float,
        detect: DetectFn | None = None,
        *,
        batch: int = 32,
    ) -> float:
        """Fit the baseline on clean footage and set the threshold; return it."""
        return self.calibrate_features([self.features_of(o) for o in clean], target_fpr)

    def calibrate_features(self, rows: Iterable[Mapping[str, float]], target_fpr: float) -> float:
        """:meth:`calibrate` from per-frame features (e.g. cached ones).

        The baseline is each feature's block means on the clean rows; the
        threshold is ``margin`` times the ``target_fpr`` quantile of the
        clean blocks' deviations (largest over features), at least 5 sd: a
        short clean stretch under-samples the tails of correlated footage.
        """
        rows = list(rows)
        blocks: dict[str, list[float]] = {name: [] for name in self.features}  # NaN: no value
        for start in range(0, len(rows) - self.block + 1, self.block):
            for name, values in blocks.items():
                x = [r.get(name, math.nan) for r in rows[start : start + self.block]]
                values.append(np.nanmean(x) if any(map(math.isfinite, x)) else math.nan)
        baseline = _fit(
            {k: [v for v in x if math.isfinite(v)] for k, x in blocks.items()}, self.floors
        )
        if not baseline:
            raise ValueError(f"too little clean footage: {len(rows)} frames")
        worst = np.zeros(len(blocks[self.features[0]]))
        for name, (mean, down, up) in baseline.items():
            z = [_standardise(v, mean, down, up) for v in blocks[name] if math.isfinite(v)]
            at = [i for i, v in enumerate(blocks[name]) if math.isfinite(v)]
            for j, i in enumerate(at):  # the deviation a block would score, as in score()
                window = z[max(0, j - self.recent + 1) : j + 1]
                worst[i] = max(worst[i], abs(sum(window) / len(window)))
        self._calibrated = baseline
        self.threshold = max(_MIN_THRESHOLD, self.margin * _quantile(list(worst), target_fpr))
        self.reset()
        return self.threshold
