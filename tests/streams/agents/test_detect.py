"""The detector agent's batches in flight: overlapped on a GPU, one at a time on a CPU."""

from __future__ import annotations

import pytest

from streams.agents.detect import in_flight_depth
from streams.settings import Settings, SettingsError


@pytest.mark.parametrize(("device", "depth"), [("cpu", 1), ("cuda", 2)])
def test_by_default_batches_overlap_on_a_gpu_only(device, depth):
    assert in_flight_depth(Settings.from_env({"SECMLOPS_DEVICE": device})) == depth


def test_the_setting_overrides_the_device_default():
    settings = Settings.from_env({"SECMLOPS_DEVICE": "cpu", "SECMLOPS_WORKER_IN_FLIGHT": "3"})
    assert in_flight_depth(settings) == 3


def test_a_depth_out_of_range_is_refused_by_name():
    with pytest.raises(SettingsError, match="SECMLOPS_WORKER_IN_FLIGHT=9"):
        Settings.from_env({"SECMLOPS_WORKER_IN_FLIGHT": "9"})
