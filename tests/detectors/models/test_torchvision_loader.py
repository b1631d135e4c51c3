"""Bring-your-own torchvision models load from local files without unpickling code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.models.base import Detector
from detectors.models.torchvision_loader import TorchvisionDetector, load_state

ARCH = "ssdlite320_mobilenet_v3_large"


@pytest.fixture(scope="module")
def state():
    import torchvision.models.detection as zoo

    torch.manual_seed(0)
    model = zoo.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    return model.state_dict()


def test_safetensors_and_pt_state_dicts_load_the_same(state, tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "m.safetensors")
    torch.save(state, tmp_path / "m.pt")
    a, b = load_state(tmp_path / "m.safetensors"), load_state(tmp_path / "m.pt")
    assert a.keys() == b.keys() == state.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_pickle_that_is_not_a_plain_state_dict_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this would run on load",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match=r"Weights only load failed|Unsupported"):
        load_state(tmp_path / "evil.pt")


def test_the_detector_reports_only_the_person_class(state):
    detector = TorchvisionDetector(ARCH, state, num_classes=3, person_label=1, score_threshold=0.0)
    assert isinstance(detector, Detector)
    assert detector.name == f"torchvision-{ARCH}"
    out = detector.detect_batch(
        [np.zeros((240, 320, 3), np.uint8), np.full((120, 160, 3), 90, np.uint8)]
    )
    assert len(out) == 2
    for boxes in out:
        assert boxes.dtype == np.float32
        assert boxes.shape[1] == 5


def test_an_unknown_architecture_is_named(state):
    with pytest.raises(ValueError, match="no detection architecture 'yolo'"):
        TorchvisionDetector("yolo", state)
