"""Monitor agents: which thread scores a monitor's batches."""

from __future__ import annotations

import pytest

from detectors.monitors.drift import ImageDrift
from detectors.monitors.squeeze import FeatureSqueezing
from streams.agents.monitor import scores_in_device_thread


def test_a_monitor_scores_in_a_thread_of_its_own_unless_told_to_share_the_device_thread():
    assert not scores_in_device_thread(ImageDrift, "own")
    assert scores_in_device_thread(ImageDrift, "device")


@pytest.mark.parametrize("placement", ["own", "device"])
def test_a_monitor_that_runs_the_model_keeps_a_thread_of_its_own(placement):
    # It waits for its model runs in the device thread, so it cannot wait from there.
    assert FeatureSqueezing.needs_model
    assert not scores_in_device_thread(FeatureSqueezing, placement)
