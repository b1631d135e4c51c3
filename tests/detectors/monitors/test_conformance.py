"""Every registered monitor keeps the contract: JSON state, faithful resume, bounded memory.

Parametrised over the registry, so a new built-in monitor is held to the same rules
without writing a test; the example plug-in from the docs is checked too.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.monitors.base import Monitor, Observation
from detectors.monitors.registry import available, load
from streams.events import Box, Prediction, Timing

EXAMPLE = Path(__file__).parents[3] / "examples" / "plugins" / "night_monitor.py"


def _example_class() -> type[Monitor]:
    spec = importlib.util.spec_from_file_location("night_monitor", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["night_monitor"] = module
    spec.loader.exec_module(module)
    return module.NightMonitor


def _stream(n: int, seed: int = 0) -> list[Observation]:
    """A synthetic camera: a textured scene drifting slowly, with a pedestrian or two."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (90, 160, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        image = np.roll(base, i, axis=1)
        image = np.clip(image.astype(int) + rng.integers(-3, 4, image.shape), 0, 255).astype(
            np.uint8
        )
        x = 20 + (i % 40)
        boxes = [Box(x, 20, x + 20, 70, float(0.6 + 0.3 * rng.random()))]
        if i % 3:
            boxes.append(Box(100, 10, 120, 60, 0.8))
        fid = f"{i:032x}"
        pred = Prediction(fid, "cam", i, i * 33_000_000, "m", "1", boxes, Timing(), i)
        out.append(
            Observation("cam", fid, i, i * 33_000_000, i * 33_000_000, image=image, prediction=pred)
        )
    return out


def _detect(images):
    return [np.array([[20, 20, 40, 70, 0.9]], np.float32) for _ in images]


MONITORS = [load(name) for name in available()] + [_example_class()]
IDS = [cls.name for cls in MONITORS]


@pytest.fixture(params=MONITORS, ids=IDS)
def cls(request) -> type[Monitor]:
    return request.param


def scores(monitor: Monitor, observations: list[Observation]) -> list[tuple[float, bool]]:
    verdicts = [monitor.judge(s) for s in monitor.score_batch(observations, _detect)]
    return [(round(v.score, 9), v.alarm) for v in verdicts]


def test_declares_what_it_is(cls):
    assert cls.kind in ("integrity", "drift", "adversarial", "health")
    assert cls.consumes in ("frames", "predictions", "both")
    assert cls.__doc__ and "Examples" in cls.__doc__, "a public monitor documents an example"


def test_its_docstring_example_runs(cls):
    finder = doctest.DocTestFinder()
    globs = dict(vars(sys.modules[cls.__module__]))
    tests = [t for t in finder.find(cls, globs=globs) if t.examples]
    assert tests, "no doctest examples found"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_state_is_plain_json_and_restores_the_same_monitor(cls):
    monitor = cls()
    monitor.calibrate(iter(_stream(120, seed=1)), 0.05, _detect)
    scores(monitor, _stream(40))
    state = json.loads(json.dumps(monitor.state()))
    assert state["monitor"] == cls.name
    clone = cls.from_state(state)
    assert clone.threshold == monitor.threshold
    assert json.loads(json.dumps(clone.state())) == state


def test_resuming_from_saved_state_gives_the_same_verdicts(cls):
    stream = _stream(90)
    straight = cls()
    straight.calibrate(iter(_stream(120, seed=1)), 0.05, _detect)
    saved_calibration = straight.state()
    expected = scores(straight, stream)

    first = cls.from_state(saved_calibration)
    head = scores(first, stream[:50])
    resumed = cls.from_state(json.loads(json.dumps(first.state())))
    assert head + scores(resumed, stream[50:]) == expected


def test_reset_forgets_the_stream_but_keeps_the_calibration(cls):
    monitor = cls()
    monitor.calibrate(iter(_stream(120, seed=1)), 0.05, _detect)
    calibrated = (monitor.threshold, json.dumps(monitor.calibration()))
    first = scores(monitor, _stream(30))
    monitor.reset()
    assert (monitor.threshold, json.dumps(monitor.calibration())) == calibrated
    assert scores(monitor, _stream(30)) == first


def test_state_stays_bounded_on_a_long_stream(cls):
    monitor = cls()
    stream = _stream(60)
    scores(monitor, stream)
    size_early = len(json.dumps(monitor.state()))
    for _ in range(30):
        scores(monitor, stream)
    assert len(json.dumps(monitor.state())) < max(4 * size_early, 200_000)


def test_a_state_of_another_monitor_is_refused(cls):
    with pytest.raises(ValueError, match="given to"):
        cls().restore({"monitor": "someone.else"})


def test_bad_hyperparameters_are_refused_with_a_value_error(cls):
    import inspect

    params = [
        p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "threshold"
    ]
    numeric = [
        p for p in params if isinstance(p.default, int | float) and not isinstance(p.default, bool)
    ]
    if not numeric:
        pytest.skip("no numeric hyperparameters")
    with pytest.raises(ValueError):  # noqa: PT011 - each class words it its own way
        cls(**{numeric[0].name: -1})
