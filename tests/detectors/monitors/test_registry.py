"""The plug-in contract: monitors are found through entry points, and only good ones load."""

from __future__ import annotations

import sys
import textwrap

import pytest

from detectors.monitors import registry
from detectors.monitors.registry import MonitorLoadError, available, load, select

BUILT_IN = {
    "integrity",
    "drift.image",
    "drift.detections",
    "adversarial.energy",
    "adversarial.patch",
    "adversarial.squeeze",
    "adversarial.temporal",
    "health",
}


def test_every_built_in_monitor_is_registered_through_the_entry_point_group():
    assert set(available()) >= BUILT_IN
    for name in BUILT_IN:
        assert load(name).name == name


def test_select_understands_all_none_lists_and_exclusions():
    assert {c.name for c in select(["all"])} == set(available())
    assert select(["none"]) == []
    assert [c.name for c in select(["integrity", "health"])] == ["health", "integrity"]
    assert "adversarial.squeeze" not in {c.name for c in select(["all", "-adversarial.squeeze"])}


def test_an_unknown_monitor_is_an_error_that_lists_the_known_ones():
    with pytest.raises(MonitorLoadError, match=r"registered: .*integrity"):
        select(["integrty"])
    with pytest.raises(MonitorLoadError, match="no monitor named"):
        select(["all", "-nope"])


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Install a plug-in the way pip would: a module plus dist-info with entry_points.txt."""

    def install(module_source: str, entry: str) -> None:
        (tmp_path / "thirdparty_monitor.py").write_text(textwrap.dedent(module_source))
        info = tmp_path / "thirdparty_monitor-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-monitor\n")
        (info / "entry_points.txt").write_text(f"[secmlops.detectors]\n{entry}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("thirdparty_monitor", None)

    yield install
    sys.modules.pop("thirdparty_monitor", None)


def test_a_third_party_monitor_needs_one_file_and_one_entry_point(plugin_dist):
    from pathlib import Path

    example = Path(__file__).parents[3] / "examples" / "plugins" / "night_monitor.py"
    plugin_dist(example.read_text(), "example.night = thirdparty_monitor:NightMonitor")
    assert "example.night" in available()
    cls = load("example.night")
    assert cls.__name__ == "NightMonitor"
    assert "example.night" in {c.name for c in select(["all"])}


def test_an_entry_point_that_is_not_a_monitor_is_refused(plugin_dist):
    plugin_dist(
        "class NotAMonitor:\n    name = 'bad.one'\n", "bad.one = thirdparty_monitor:NotAMonitor"
    )
    with pytest.raises(MonitorLoadError, match="not a subclass"):
        load("bad.one")


def test_a_monitor_whose_name_disagrees_with_its_entry_point_is_refused(plugin_dist):
    source = """
    from detectors.monitors.base import Monitor, Score
    class Misnamed(Monitor):
        name, kind, consumes = "other", "drift", "frames"
        def score(self, observation):
            return Score(0.0)
    """
    plugin_dist(source, "mine = thirdparty_monitor:Misnamed")
    with pytest.raises(MonitorLoadError, match="names must agree"):
        load("mine")


def test_a_plugin_that_fails_to_import_is_reported_with_its_error(plugin_dist):
    plugin_dist("raise RuntimeError('boom')\n", "broken = thirdparty_monitor:X")
    with pytest.raises(MonitorLoadError, match=r"failed to import.*boom"):
        load("broken")


def test_the_group_name_is_the_documented_one():
    assert registry.GROUP == "secmlops.detectors"


def test_parameters_are_set_as_monitor_dot_param_equals_a_json_value():
    classes = select(["adversarial.squeeze", "integrity"])
    params = registry.parse_params(
        ["adversarial.squeeze.budget=0.1", "adversarial.squeeze.burst=32", "integrity.memory=64"],
        classes,
    )
    assert params == {
        "adversarial.squeeze": {"budget": 0.1, "burst": 32},
        "integrity": {"memory": 64},
    }
    assert registry.parse_params([], classes) == {}


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("adversarial.squeeze.budget", "expected MONITOR.PARAM=VALUE"),
        ("budget=0.1", "expected MONITOR.PARAM=VALUE"),
        ("drift.image.block=5", "'drift.image' is not an enabled monitor"),
        ("adversarial.squeeze.nope=1", "no parameter 'nope'"),
        ("adversarial.squeeze.budget=2", "0 < budget <= 1"),  # the constructor's own check
        ("adversarial.squeeze.budget=lots", "adversarial.squeeze with {'budget': 'lots'}"),
        ("adversarial.squeeze.budget=true", "budget is 0.025 by default"),
        ("adversarial.squeeze.trigger=0.2", "calibration sets adversarial.squeeze's trigger"),
    ],
)
def test_a_bad_parameter_is_refused_with_what_is_known(item, says):
    with pytest.raises(MonitorLoadError) as raised:
        registry.parse_params([item], select(["adversarial.squeeze"]))
    assert says in str(raised.value)
