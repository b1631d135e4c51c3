"""Injection specs: parsed strictly, with errors that say what is allowed."""

from __future__ import annotations

import json

import pytest

from producers.injection.spec import PARAMS, SpecError, load_schedule, parse_spec


def test_a_full_spec_parses_with_defaults_filled_in():
    spec = parse_spec("pgd:eps=4/255,steps=20@100-200#cam-2")
    assert (spec.type, spec.start, spec.end, spec.camera) == ("pgd", 100, 200, "cam-2")
    assert spec.params["eps"] == pytest.approx(4 / 255)
    assert spec.params["steps"] == 20
    assert spec.params["alpha"] == pytest.approx(2 / 255)  # the default
    assert spec.family == "adversarial"


def test_ranges_are_half_open_and_may_be_open_ended():
    spec = parse_spec("drop@10-12")
    assert [spec.covers("any", n) for n in (9, 10, 11, 12)] == [False, True, True, False]
    assert parse_spec("fog@5-").covers("any", 10**6)
    assert parse_spec("fog").covers("any", 0)


def test_a_camera_filter_limits_the_injection_to_that_camera():
    spec = parse_spec("unsigned@0-10#front")
    assert spec.covers("front", 3)
    assert not spec.covers("rear", 3)


def test_a_ramp_grows_the_strength_linearly_to_full():
    spec = parse_spec("fog:ramp=4@10-")
    assert [spec.strength(n) for n in (10, 11, 13, 20)] == [0.25, 0.5, 1.0, 1.0]
    assert parse_spec("fog@10-").strength(10) == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tornado", "unknown injection 'tornado'"),
        ("fog:thickness=1", "no parameter 'thickness'"),
        ("fog:density=2", r"outside \[0, 1\]"),
        ("pgd:eps=lots", "not a number"),
        ("fog:density", "needs NAME=VALUE"),
        ("fog@20-10", "start < end"),
        ("fog@x-y", "expected TYPE"),
    ],
)
def test_malformed_specs_are_rejected_with_a_reason(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_every_type_has_a_family():
    families = {family for family, _ in PARAMS.values()}
    assert families == {"natural", "adversarial", "integrity", "model"}


def test_a_yaml_schedule_loads(tmp_path):
    path = tmp_path / "drill.yaml"
    path.write_text(
        "injections:\n"
        "  - {type: fog, frames: [300, 600], params: {density: 0.7, ramp: 60}}\n"
        "  - {type: drop, frames: [10, 12], camera: front}\n"
        "  - {type: pgd, frames: [100, null], params: {eps: 8/255}}\n"
    )
    fog, drop, pgd = load_schedule(path)
    assert (fog.type, fog.start, fog.end, fog.params["ramp"]) == ("fog", 300, 600, 60)
    assert drop.camera == "front"
    assert pgd.end is None
    assert pgd.params["eps"] == pytest.approx(8 / 255)


def test_a_json_schedule_loads(tmp_path):
    path = tmp_path / "drill.json"
    path.write_text(json.dumps({"injections": [{"type": "blur", "frames": [0, 5]}]}))
    assert load_schedule(path)[0].params["sigma"] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "top-level 'injections:'"),
        ("injections: [{frames: [0, 1]}]\n", "needs at least 'type'"),
        ("injections: [{type: fog, when: now}]\n", "unknown keys"),
        ("injections: [{type: fog, frames: [1]}]\n", r"must be \[start, end\]"),
        ("injections: [{type: fog, frames: [a, 2]}]\n", "must be integers"),
        ("injections: [{type: fog, params: {density: 9}}]\n", "injection 1: fog.density"),
        ("injections: [\n", "not valid yaml"),
    ],
)
def test_malformed_schedules_name_the_problem(tmp_path, text, message):
    path = tmp_path / "drill.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_schedule(path)


def test_a_missing_schedule_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="No such file"):
        load_schedule(tmp_path / "nope.yaml")
