"""Scoring a red-team replay: the drill's truth against what the pipeline decided.

Pure logic, no Kafka (``secmlops eval`` collects the records).  Inputs:

* the ``truth/1`` records of the replay (one per source frame: its
  injections, whether it was delivered, what a replay attack re-sent);
* every terminal outcome of the replay's frames, in arrival order
  (``trusted``, ``quarantined`` or ``deadletter``), with the broker time of
  the record, so a frame id delivered twice has two outcomes;
* where the drift monitors' alarm episodes started (drift is a
  stream-level finding: it is scored by the monitor's alarm, not by
  quarantines, and not by the alert stream either, whose deduplication
  window is wall-clock time: a fast replay fits a whole drive in it).
  :func:`drift_onsets` finds them in the monitors' signals.

A delivered frame is **flagged** when it was not trusted.  For each
injection type, its frames are the positives; the clean frames are the
negatives, and a clean frame counts as a false positive *for that type*
when it was flagged for a reason of the type's family (integrity frames by
integrity, adversarial ones by adversarial monitors, a shift by drift).
The first frame delivered after withheld ones (a drop, or the frame a
replay attack replaced) carries their injections: the gap it shows is the
evidence.  Detection delay is per injected stretch: frames from its first frame to the
first flagged one (for natural shifts, to the first onset of a drift alarm
on that camera within the stretch).  The report's keys are a stable
interface, documented in ``docs/eval.md``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from producers.injection.spec import PARAMS
from streams.events import Signal, Truth

__all__ = ["Onset", "Outcome", "drift_onsets", "score"]

#: which monitor kinds may rightly flag frames of each injection family
_FAMILY_REASONS = {
    "integrity": ("integrity",),
    "adversarial": ("adversarial.",),
    "natural": (),
    "model": ("health",),
}


@dataclass(frozen=True)
class Outcome:
    """One terminal outcome of one delivery, as the scorer needs it."""

    kind: Literal["trusted", "quarantined", "deadletter"]
    frame_id: str
    ts_ms: int
    reasons: tuple[str, ...] = ()
    boxes: int | None = None
    version: str | None = None  # the model version that processed the frame
    delivery: str = ""  # the frame record it decides, partition:offset ("" if unknown)

    @property
    def flagged(self) -> bool:
        return self.kind != "trusted"


@dataclass(frozen=True)
class Onset:
    """A drift monitor started alarming on a camera at frame ``seq``."""

    camera_id: str
    monitor: str
    seq: int


def drift_onsets(signals: Iterable[Signal]) -> list[Onset]:
    """Where each drift monitor's alarm episodes start, per camera (its alarm turns on)."""
    alarming: dict[tuple[str, str], bool] = {}
    onsets = []
    for signal in sorted(signals, key=lambda s: (s.camera_id, s.monitor, s.seq)):
        if not signal.monitor.startswith("drift"):
            continue
        key = (signal.camera_id, signal.monitor)
        if signal.alarm and not alarming.get(key, False):
            onsets.append(Onset(signal.camera_id, signal.monitor, signal.seq))
        alarming[key] = signal.alarm
    return onsets


@dataclass
class _Delivery:
    truth: Truth
    types: tuple[str, ...]
    outcome: Outcome | None


def _deliveries(truth: Sequence[Truth], outcomes: Iterable[Outcome]) -> list[_Delivery]:
    """Pair each delivery the drill made with its outcome (a replayed copy with the second)."""
    queue: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        queue[outcome.frame_id].append(outcome)
    for twice in (q for q in queue.values() if len(q) > 1):
        # The copy is the later record of the partition.  Arrival order says the same only
        # when the gate decided the two apart: decided together, the trusted one and the
        # quarantined one go to different topics, and either may land first.
        if all(o.delivery for o in twice):
            twice.sort(key=lambda o: _record_order(o.delivery))
    by_seq = {(t.camera_id, t.seq): t for t in truth}
    out = []
    # A frame withheld (dropped, or replaced by a replayed one) shows as a gap on the next
    # delivered frame of its camera: that frame carries the withheld frames' injections.
    gap: dict[str, set[str]] = defaultdict(set)
    for t in sorted(truth, key=lambda t: (t.camera_id, t.seq)):
        if not t.delivered:
            gap[t.camera_id].update(t.injections)
            continue
        got = queue[t.frame_id].pop(0) if queue[t.frame_id] else None
        types = tuple(sorted(set(t.injections) | gap.pop(t.camera_id, set())))
        out.append(_Delivery(t, types, got))
    for t in truth:  # replay attacks: the old frame went out again in this frame's place
        of_seq = int(t.params.get("replay.of_seq", -1))
        if "replay" in t.injections and of_seq >= 0 and (t.camera_id, of_seq) in by_seq:
            old = by_seq[(t.camera_id, of_seq)]
            got = queue[old.frame_id].pop(0) if queue[old.frame_id] else None
            out.append(_Delivery(t, ("replay",), got))
    return out


def _record_order(delivery: str) -> tuple[int, int]:
    partition, _, offset = delivery.partition(":")
    return int(partition), int(offset)


def _stretches(deliveries: list[_Delivery], kind: str) -> list[list[_Delivery]]:
    """Runs of consecutive frames (per camera) injected with ``kind``."""
    runs: list[list[_Delivery]] = []
    last: tuple[str, int] | None = None
    for d in sorted(deliveries, key=lambda d: (d.truth.camera_id, d.truth.seq)):
        if kind not in d.types:
            continue
        here = (d.truth.camera_id, d.truth.seq)
        if last is None or here[0] != last[0] or here[1] != last[1] + 1:
            runs.append([])
        runs[-1].append(d)
        last = here
    return runs


def _delay(
    run: list[_Delivery], family: str, onsets: Sequence[Onset], degraded: Collection[str] = ()
) -> int | None:
    """Frames from the stretch's first frame to its detection, or None if never detected."""
    first = run[0].truth
    if family == "model":  # detected = rolled back: a good version serves after a degraded one
        served_bad = False
        for d in run:
            version = d.outcome.version if d.outcome is not None else None
            if version in degraded:
                served_bad = True
            elif served_bad and version is not None:
                return d.truth.seq - first.seq
        return None
    if family == "natural":
        last = run[-1].truth.seq  # an onset after the shift ended belongs to something else
        seqs = [
            o.seq for o in onsets if o.camera_id == first.camera_id and first.seq <= o.seq <= last
        ]
        return min(seqs) - first.seq if seqs else None
    for d in run:
        if d.outcome is not None and d.outcome.flagged:
            return d.truth.seq - first.seq
    return None


def _flagged_for(outcome: Outcome | None, family: str) -> bool:
    if outcome is None or not outcome.flagged:
        return False
    prefixes = _FAMILY_REASONS[family]
    if outcome.kind == "deadletter":
        return family == "integrity"
    return any(r.startswith(p) for r in outcome.reasons for p in prefixes)


def score(
    truth: Sequence[Truth],
    outcomes: Sequence[Outcome],
    onsets: Sequence[Onset] = (),
    *,
    fps: float = 30.0,
    capture_ns: dict[str, int] | None = None,
    degraded_versions: Collection[str] = (),
) -> dict[str, Any]:
    """The report (see ``docs/eval.md`` for every key).

    ``degraded_versions`` are the model versions a ``degrade`` drill promoted:
    its stretch counts as detected when a good version serves again within
    it, and the delay is the rollback time in media frames.
    """
    deliveries = _deliveries(truth, outcomes)
    clean = [d for d in deliveries if not d.types]
    lost = [d for d in deliveries if d.outcome is None]
    by_type: dict[str, Any] = {}
    for kind in sorted({k for d in deliveries for k in d.types}):
        family = PARAMS[kind][0]
        positives = [d for d in deliveries if kind in d.types]
        delays = [
            _delay(run, family, onsets, degraded_versions) for run in _stretches(deliveries, kind)
        ]
        found = [x for x in delays if x is not None]
        if family in ("natural", "model"):
            rate = len(found) / len(delays) if delays else 0.0
        else:
            flagged = [d for d in positives if d.outcome is not None and d.outcome.flagged]
            rate = len(flagged) / len(positives)
        false = [d for d in clean if _flagged_for(d.outcome, family)]
        median = statistics.median(found) if found else None
        by_type[kind] = {
            "family": family,
            "frames": len(positives),
            "stretches": len(delays),
            "detection_rate": round(rate, 4),
            "false_positive_rate": round(len(false) / len(clean), 4) if clean else 0.0,
            "median_delay_frames": median,
            "median_delay_ms": None if median is None else round(1000 * median / fps, 1),
            "undetected_stretches": len(delays) - len(found),
        }
        if family == "model":
            by_type[kind]["served_by_degraded"] = sum(
                1
                for d in deliveries
                if d.outcome is not None and d.outcome.version in degraded_versions
            )
    quarantined = [
        d for d in deliveries if d.outcome is not None and d.outcome.kind == "quarantined"
    ]
    attacked = [
        d for d in deliveries if any(PARAMS[k][0] in ("adversarial", "integrity") for k in d.types)
    ]
    should = {id(d) for d in attacked}  # what a quarantine is for: integrity and adversarial
    true_q = [d for d in quarantined if id(d) in should]
    report: dict[str, Any] = {
        "frames": len(deliveries),
        "lost_frames": len(lost),
        "outcomes": {
            kind: sum(1 for d in deliveries if d.outcome is not None and d.outcome.kind == kind)
            for kind in ("trusted", "quarantined", "deadletter")
        },
        "clean": {
            "frames": len(clean),
            "false_positive_rate": round(
                sum(1 for d in clean if d.outcome is not None and d.outcome.flagged)
                / max(1, len(clean)),
                4,
            ),
        },
        "quarantine": {
            "precision": round(len(true_q) / len(quarantined), 4) if quarantined else None,
            "recall": round(
                sum(1 for d in attacked if d.outcome is not None and d.outcome.flagged)
                / len(attacked),
                4,
            )
            if attacked
            else None,
        },
        "by_type": by_type,
    }
    if capture_ns:
        report.update(_timing(deliveries, capture_ns))
    return report


def _timing(deliveries: list[_Delivery], capture_ns: dict[str, int]) -> dict[str, Any]:
    """Throughput (outcomes per second, first to last) and capture→outcome latency."""
    pairs = [
        (d.outcome.ts_ms, capture_ns[d.outcome.frame_id])
        for d in deliveries
        if d.outcome is not None and d.outcome.frame_id in capture_ns
    ]
    if len(pairs) < 2:
        return {"throughput_fps": None, "latency_ms": {"p50": None, "p99": None}}
    stamps = sorted(ts for ts, _ in pairs)
    latency = sorted(ts - cap / 1e6 for ts, cap in pairs)
    span_s = max(1e-3, (stamps[-1] - stamps[0]) / 1000)
    return {
        "throughput_fps": round((len(stamps) - 1) / span_s, 2),
        "latency_ms": {
            "p50": round(statistics.median(latency), 1),
            "p99": round(latency[min(len(latency) - 1, int(0.99 * len(latency)))], 1),
        },
    }
