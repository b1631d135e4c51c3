"""``secmlops eval``: a red-team replay through the full pipeline, scored (see docs/eval.md).

Steps: start the local stack if it is managed, register the real models,
optionally calibrate the monitors on the first frames of the source, start a
worker with the chosen monitors, replay the source with the schedule's
injections (truth records on ``pds.truth``), collect every delivery's
terminal outcome and the monitors' signals, and score them with
:func:`streams.evaluation.score`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import click

from detectors.monitors.registry import select
from model_store.catalog import build_detector
from model_store.registry import Registry
from model_store.setup import setup_models
from model_store.signing import Verifier
from producers.frames import FrameSender
from producers.injection import Drill, load_schedule
from producers.injection.spec import PARAMS
from producers.replay import Replayer, ReplayOptions
from producers.sources import open_source
from streams.calibration import calibrate_served
from streams.checkpoints import forget_cameras
from streams.clients import redis_client, tail
from streams.demo import ensure_keys
from streams.evaluation import Outcome, drift_onsets, score
from streams.events import (
    DeadLetter,
    InvalidEvent,
    Prediction,
    Quarantine,
    Signal,
    Signals,
    Truth,
    decode,
    delivery_of,
    signals_in,
)
from streams.model_drill import ModelDrill
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack
from streams.topics import TOPICS, TopicSpec
from streams.worker import WorkerProcess

__all__ = ["run_eval"]


class _Tail:
    """Records of some topics from their ends at creation, with broker timestamps."""

    def __init__(self, settings: Settings, specs: list[TopicSpec]) -> None:
        self._consumer = tail(settings, *specs, client_id="secmlops-eval")
        self.records: list[tuple[Any, int]] = []

    def poll(self) -> None:
        for records in self._consumer.poll(timeout_ms=200).values():
            for record in records:
                try:
                    self.records.append((decode(record.value), record.timestamp))
                except InvalidEvent:
                    continue

    def drain(self) -> None:
        """Poll until a poll brings nothing new."""
        before = -1
        while len(self.records) != before:
            before = len(self.records)
            self.poll()

    def close(self) -> None:
        self._consumer.close()


def _outcome(event: Any, ts_ms: int) -> Outcome | None:
    if isinstance(event, Prediction):
        boxes, version = len(event.boxes), event.model_version
        return Outcome("trusted", event.frame_id, ts_ms, (), boxes, version, event.delivery)
    if isinstance(event, Quarantine):
        reasons, version = tuple(event.reasons), event.model_version
        return Outcome("quarantined", event.frame_id, ts_ms, reasons, None, version, event.delivery)
    if isinstance(event, DeadLetter) and event.frame_id:
        of_frames = event.source_topic == TOPICS.frames.name and event.offset >= 0
        delivery = delivery_of(event.partition, event.offset) if of_frames else ""
        return Outcome("deadletter", event.frame_id, ts_ms, (event.reason,), delivery=delivery)
    return None


def _calibrate(settings: Settings, source: Path, camera: str, frames: int, size) -> None:  # noqa: ANN001
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    clean = open_source(source, camera, end=frames, resize=size)
    meta = {"sources": [str(source)], "actor": "eval"}
    calibrate_served(settings, registry, clean.frames(), total=frames, meta=meta)


def run_eval(
    settings: Settings,
    source: Path,
    schedule: Path,
    *,
    camera: str = "eval",
    calibrate: int = 0,
    start: int = 0,
    end: int | None = None,
    resize: tuple[int, int] | None = None,
    fast: bool = True,
    timeout_s: float = 900.0,
    sweep: bool = False,
) -> dict[str, Any]:
    """Replay ``source`` with ``schedule`` through the pipeline; the scored report.

    With ``sweep``, the same replay also runs with no monitor and with each
    enabled monitor alone; their headline numbers go under ``sweep`` (the
    trade-off between what each measure catches and what it costs).
    """
    specs = load_schedule(schedule)
    stack = Stack(settings)
    started = stack.up()
    settings = ensure_keys(settings)
    try:
        for line in setup_models(settings):
            click.echo(f"  {line}", err=True)
        if calibrate:
            click.echo(f"calibrating the monitors on frames 0-{calibrate - 1}", err=True)
            _calibrate(settings, source, camera, calibrate, resize)

        attacks: dict = {}  # adversarial frames, computed once for every run

        def once(monitors: str, preload: bool = False) -> dict[str, Any]:
            first = max(start, calibrate)
            frames = open_source(source, camera, start=first, end=end, resize=resize)
            # A preloaded run has no pipeline running while it sends: no model drill in it.
            run_specs = [s for s in specs if not (preload and s.family == "model")]
            return _replay(
                settings, frames, first, run_specs, monitors, fast, timeout_s, preload, attacks
            )

        report = once(",".join(settings.monitors))
        if sweep:  # the pipeline's capacity, so each run is loaded before its worker starts
            runs = {"none": once("none", preload=True)}
            for cls in select(settings.monitors):
                runs[cls.name] = once(cls.name, preload=True)
            runs["all"] = once(",".join(settings.monitors), preload=True)
            report["sweep"] = _sweep_summary(runs)
    finally:
        if any(started.values()):
            stack.down()
    report["source"] = {"path": str(source), "camera": camera, "schedule": str(schedule)}
    report["monitors"] = list(settings.monitors)
    return report


def _replay(  # noqa: ANN202
    settings: Settings,
    frames,  # noqa: ANN001
    first: int,
    specs,  # noqa: ANN001
    monitors: str,
    fast: bool,
    timeout_s: float,
    preload: bool = False,
    attacks: dict | None = None,
):
    """One replay through a worker running ``monitors``; its scored report.

    ``preload`` sends every frame before the worker starts: throughput is then
    the pipeline's capacity (and latency includes the wait in the backlog).
    A model drill waits until every frame sent before it has its outcome, so
    that it hits the frame it names however far ahead of the pipeline the
    replay runs.
    """
    truth_tail = _Tail(settings, [TOPICS.truth])
    outcome_tail = _Tail(settings, [TOPICS.trusted, TOPICS.quarantine, TOPICS.deadletter])
    signal_tail = _Tail(settings, [TOPICS.signals])
    model_drill = ModelDrill(settings, actor="secmlops eval") if _has_model(specs) else None

    def drill_at(spec) -> None:  # noqa: ANN001
        _collect(truth_tail, outcome_tail, spec.start - first, timeout_s, label=None)
        model_drill(spec)  # type: ignore[misc]

    drill = Drill(
        specs,
        adversary=_adversary(specs),
        model_drill=drill_at if model_drill else None,
        prepared=attacks,
    )
    if any(spec.family == "adversarial" for spec in specs):
        click.echo("attacking the frames first, so that the replay keeps its pace", err=True)
        drill.prepare(frames.frames())
    click.echo(f"replaying with monitors: {monitors}", err=True)
    log = settings.state_dir / "eval-worker.log"
    forget_cameras(redis_client(settings), [frames.camera_id])  # each run starts fresh
    worker = WorkerProcess(log, env={"SECMLOPS_MONITORS": monitors})
    if not preload:
        worker.start().wait_ready(settings)
    try:
        options = ReplayOptions(speed=None if fast else 1.0)
        with FrameSender(settings, Keyring.from_settings(settings)) as sender:
            summary = Replayer(sender, options, drill).run(frames.frames(), total=frames.expected)
        if preload:
            worker.start()
        truth, outcomes = _collect(truth_tail, outcome_tail, summary.frames, timeout_s)
        signal_tail.drain()
        signals = [e for e, _ in signal_tail.records if isinstance(e, Signal | Signals)]
        onsets = drift_onsets(s for e in signals for s in signals_in(e))
    finally:
        for tail in (truth_tail, outcome_tail, signal_tail):
            tail.close()
        worker.stop()
        if model_drill is not None:
            model_drill.restore()
    capture = {t.frame_id: t.capture_ts_ns for t in truth}
    report = score(
        truth,
        outcomes,
        onsets,
        fps=frames.fps or 30.0,
        capture_ns=capture,
        degraded_versions=model_drill.degraded if model_drill else (),
    )
    report["pedestrians_lost"] = _pedestrians_lost(settings, frames, truth, outcomes)
    report["drift_onsets"] = [dataclasses.asdict(o) for o in onsets]
    return report


def _pedestrians_lost(settings: Settings, frames, truth, outcomes) -> dict[str, int]:  # noqa: ANN001
    """On adversarial frames the gate trusted: pedestrians the serving model found on the clean
    frame, against those it found on the attacked one (what got through cost)."""
    attacked = {
        t.frame_id: t.seq
        for t in truth
        if t.delivered and any(PARAMS[k][0] == "adversarial" for k in t.injections)
    }
    through = {
        o.frame_id: o.boxes for o in outcomes if o.kind == "trusted" and o.frame_id in attacked
    }
    result = {"attacked_frames_trusted": len(through), "clean": 0, "attacked": 0, "lost": 0}
    if not through:
        return result
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    version = registry.active(settings.model_name)
    detector = build_detector(
        registry.artifact(settings.model_name, version), registry.verifier, version=version
    )
    wanted = {attacked[f]: n or 0 for f, n in through.items()}
    clean = [f.image for i, f in enumerate(frames.frames()) if i in wanted]
    found = [len(boxes) for boxes in detector.detect_batch(clean)] if clean else []
    result["clean"] = sum(found)
    result["attacked"] = sum(wanted[s] for s in sorted(wanted))
    result["lost"] = max(0, result["clean"] - result["attacked"])
    return result


def _sweep_summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per configuration: what it caught, what it wrongly held, what it cost."""
    base = runs["none"].get("throughput_fps") or None
    out = {}
    for name, report in runs.items():
        fps = report.get("throughput_fps")
        out[name] = {
            "detection_rate": report["quarantine"]["recall"],
            "false_positive_rate": report["clean"]["false_positive_rate"],
            "throughput_fps": fps,
            "throughput_vs_none": round(fps / base, 3) if fps and base else None,
            "latency_ms": report.get("latency_ms"),
            "by_type": {k: v["detection_rate"] for k, v in report["by_type"].items()},
        }
    return out


def _has_model(specs) -> bool:  # noqa: ANN001
    return any(spec.family == "model" for spec in specs)


def _adversary(specs):  # noqa: ANN001, ANN202
    if not any(spec.family == "adversarial" for spec in specs):
        return None
    from producers.injection.adversarial import Adversary

    return lambda: Adversary("hog-torch")


def _collect(  # noqa: ANN202
    truth_tail: _Tail,
    outcome_tail: _Tail,
    frames: int,
    timeout_s: float,
    label: str | None = "outcomes",
):
    """Truth for the first ``frames`` frames, then an outcome for each delivery (or the timeout).

    ``label=None``: no progress bar.
    """
    deadline = time.monotonic() + timeout_s
    truth: list[Truth] = []
    while len(truth) < frames and time.monotonic() < deadline:
        truth_tail.poll()
        truth = [e for e, _ in truth_tail.records if isinstance(e, Truth)]
    ids = {t.frame_id for t in truth}
    expected = sum(t.delivered for t in truth) + sum(
        1 for t in truth if "replay" in t.injections and t.params.get("replay.of_seq", -1) >= 0
    )

    def poll() -> list[Outcome]:
        outcome_tail.poll()
        found = (_outcome(e, ts) for e, ts in outcome_tail.records)
        return [o for o in found if o is not None and o.frame_id in ids]

    outcomes: list[Outcome] = []
    if label is None:
        while len(outcomes) < expected and time.monotonic() < deadline:
            outcomes = poll()
        return truth, outcomes
    stderr = click.get_text_stream("stderr")
    with click.progressbar(length=expected, label=label, file=stderr) as bar:
        while len(outcomes) < expected and time.monotonic() < deadline:
            before, outcomes = len(outcomes), poll()
            bar.update(len(outcomes) - before)
    return truth, outcomes
