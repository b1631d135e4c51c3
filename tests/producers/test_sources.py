"""Footage sources: videos and image folders, interleaved by time, with clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from producers.sources import ImageFolderSource, SourceError, interleave, open_source
from producers.synthetic import pattern_frame


def write_video(path, n, fps=10.0, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        writer.write(pattern_frame(i, width=size[0], height=size[1]))
    writer.release()
    return path


def write_images(folder, n, suffix=".png"):
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i}{suffix}"), pattern_frame(i, width=32, height=24))
    return folder


def test_a_video_yields_its_frames_with_media_times(tmp_path):
    source = open_source(write_video(tmp_path / "v.avi", 12), "cam")
    frames = list(source.frames())
    assert [f.number for f in frames] == list(range(12))
    assert frames[1].media_ns - frames[0].media_ns == pytest.approx(1e8, rel=1e-3)
    assert frames[0].image.shape == (48, 64, 3)


def test_start_end_loop_and_resize(tmp_path):
    source = open_source(
        write_video(tmp_path / "v.avi", 10), "cam", start=2, end=5, loop=True, resize=(32, 24)
    )
    frames = [f for _, f in zip(range(7), source.frames(), strict=False)]
    assert [f.number for f in frames] == [2, 3, 4, 2, 3, 4, 2]
    times = [f.media_ns for f in frames]
    assert times == sorted(times)
    assert len(set(times)) == 7  # media time keeps growing across loops
    assert frames[0].image.shape == (24, 32, 3)


def test_image_folders_are_read_in_natural_order(tmp_path):
    folder = write_images(tmp_path / "imgs", 12)
    numbers = [f.number for f in open_source(folder, "cam").frames()]
    assert numbers == list(range(12))  # img10 comes after img9, not after img1


def test_an_image_folder_takes_timestamps_from_a_file(tmp_path):
    folder = write_images(tmp_path / "imgs", 3)
    stamps = tmp_path / "times.txt"
    stamps.write_text("img0.png 100.0\nimg1.png 100.5\nimg2.png 102.0\n")
    frames = list(ImageFolderSource(folder, "cam", timestamps=stamps).frames())
    assert [f.media_ns for f in frames] == [0, 500_000_000, 2_000_000_000]


def test_sources_interleave_by_media_time(tmp_path):
    fast = open_source(write_video(tmp_path / "a.avi", 6, fps=20.0), "fast")
    slow = open_source(write_video(tmp_path / "b.avi", 3, fps=10.0), "slow")
    order = [f.camera_id for f in interleave([slow, fast])]
    assert order == ["slow", "fast", "fast", "slow", "fast", "fast", "slow", "fast", "fast"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.mp4", "no such file"),
        (lambda tmp: (tmp / "x.mp4").write_bytes(b"not a video") and tmp / "x.mp4", "cannot open"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no images"),
    ],
)
def test_unreadable_sources_are_errors_naming_the_file(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        open_source(make(tmp_path), "cam")


def test_a_broken_image_mid_folder_stops_with_its_name(tmp_path):
    folder = write_images(tmp_path / "imgs", 3)
    (folder / "img1.png").write_bytes(b"broken")
    frames = open_source(folder, "cam").frames()
    next(frames)
    with pytest.raises(SourceError, match=r"img1\.png: does not decode"):
        next(frames)


def test_a_start_past_the_end_is_refused(tmp_path):
    with pytest.raises(SourceError, match="past its 4"):
        open_source(write_video(tmp_path / "v.avi", 4), "cam", start=9)


def test_the_sample_drive_opens_as_a_1799_frame_video(sample_drive):
    source = open_source(sample_drive, "drive", end=3)
    assert source.length == 1799
    assert source.fps == pytest.approx(29.97, abs=0.01)
    first = next(source.frames())
    assert first.image.shape == (360, 640, 3)
    assert np.asarray(first.image).std() > 10


def test_prefetch_keeps_order_and_raises_source_errors_in_place(tmp_path):
    from producers.sources import prefetch

    folder = write_images(tmp_path / "imgs", 5)
    (folder / "img3.png").write_bytes(b"broken")
    frames = prefetch(open_source(folder, "cam").frames(), depth=2)
    assert [next(frames).number for _ in range(3)] == [0, 1, 2]
    with pytest.raises(SourceError, match="img3"):
        next(frames)


def test_closing_a_prefetch_stops_its_thread(tmp_path):
    import threading

    from producers.sources import prefetch

    source = open_source(write_video(tmp_path / "v.avi", 30), "cam", loop=True)
    frames = prefetch(source.frames(), depth=2)
    next(frames)
    frames.close()
    assert not any(t.name == "source-prefetch" for t in threading.enumerate())
