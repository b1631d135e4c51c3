"""CPU lanes: a batch's parts run side by side, in order, one torch thread each."""

from __future__ import annotations

import threading

import pytest
import torch

from streams.cpu_lanes import CpuLanes, usable_cores


@pytest.fixture
def torch_threads():
    """Lanes set torch's thread count; give the other tests back theirs."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def lanes(request, torch_threads):
    runner = CpuLanes(request.param, name="test-lane")
    yield runner
    runner.shutdown()


def tens(chunk):
    return [x * 10 for x in chunk]


@pytest.mark.parametrize("lanes", [1, 2, 3], indirect=True)
@pytest.mark.parametrize("size", [0, 1, 2, 5, 32])
@pytest.mark.parametrize("part", [0, 1, 2, 4])
def test_every_image_gets_its_own_result_in_order(lanes, size, part):
    found, _ = lanes.run(tens, list(range(size)), part)
    assert found == [x * 10 for x in range(size)]


@pytest.mark.parametrize("lanes", [2], indirect=True)
def test_parts_run_side_by_side(lanes):
    meet = threading.Barrier(2, timeout=10)  # broken, and raising, unless two parts meet
    names = set()

    def detect(chunk):
        names.add(threading.current_thread().name)
        meet.wait()
        return tens(chunk)

    found, _ = lanes.run(detect, list(range(8)), 2)
    assert found == tens(range(8))
    assert len(names) == 2 and threading.current_thread().name in names


@pytest.mark.parametrize("lanes", [1], indirect=True)
def test_one_lane_runs_the_parts_in_turn_in_the_calling_thread(lanes):
    calls = []
    lanes.run(
        lambda chunk: calls.append(threading.current_thread().name) or tens(chunk),
        list(range(6)),
        2,
    )
    assert calls == [threading.current_thread().name] * 3


@pytest.mark.parametrize("lanes", [2], indirect=True)
def test_a_small_batch_is_cut_finer_so_every_lane_has_a_part(lanes):
    sizes = []
    lanes.run(lambda chunk: sizes.append(len(chunk)) or tens(chunk), [1, 2], 2)
    assert sizes == [1, 1]


@pytest.mark.parametrize("lanes", [1, 2], indirect=True)
def test_between_runs_in_the_calling_thread_before_each_of_its_parts_but_the_first(lanes):
    caller = threading.current_thread()
    mine, seen = [], []

    def detect(chunk):
        if threading.current_thread() is caller:
            mine.append(chunk[0])
        return tens(chunk)

    _, paused_ns = lanes.run(
        detect, list(range(12)), 2, between=lambda: seen.append(threading.current_thread())
    )
    assert seen == [caller] * (len(mine) - 1)
    assert paused_ns >= 0


@pytest.mark.parametrize("lanes", [2], indirect=True)
def test_a_failing_part_fails_the_batch_after_every_part_has_stopped(lanes):
    running = []

    def detect(chunk):
        running.append(chunk[0])
        if chunk[0] == 4:
            raise RuntimeError("out of memory")
        return tens(chunk)

    with pytest.raises(RuntimeError, match="out of memory"):
        lanes.run(detect, list(range(8)), 2)
    # The lanes are usable again: nothing of the failed batch is left running.
    assert lanes.run(tens, [1, 2, 3], 1)[0] == [10, 20, 30]


@pytest.mark.parametrize("lanes", [2], indirect=True)
def test_a_model_that_returns_the_wrong_number_of_results_is_an_error(lanes):
    with pytest.raises(RuntimeError, match="1 results for 2 images"):
        lanes.run(lambda chunk: [0], list(range(4)), 2)


@pytest.mark.parametrize("lanes", [2], indirect=True)
def test_each_lane_runs_torch_on_one_thread(lanes):
    counts = []
    lanes.run(
        lambda chunk: counts.append(torch.get_num_threads()) or tens(chunk), list(range(8)), 2
    )
    assert counts == [1] * 4


def test_one_lane_leaves_torch_threads_alone(torch_threads):
    torch.set_num_threads(2)
    runner = CpuLanes(1)
    runner.claim_thread()
    runner.run(tens, list(range(4)), 2)
    assert torch.get_num_threads() == 2


def test_there_is_at_least_one_lane():
    with pytest.raises(ValueError, match="at least 1"):
        CpuLanes(0)
    assert usable_cores() >= 1
