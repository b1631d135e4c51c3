"""First-run setup: both real detectors built, signed and registered, one of them serving.

Idempotent: a model whose weights are already registered is not registered
again, and an existing active version is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from model_store.catalog import hog_parts, make_artifact, ssdlite_parts
from model_store.registry import Registry
from model_store.signing import Signer, Verifier
from streams.assets import ASSETS, fetch_asset
from streams.clients import redis_client
from streams.settings import Settings

__all__ = ["setup_models"]


def setup_models(settings: Settings, which: Sequence[str] = ("hog", "ssdlite")) -> Iterator[str]:
    """Register the models in ``which`` under ``settings.model_name``; yields progress lines.

    When no version serves yet, the last one of ``which`` is promoted.
    """
    signer = Signer.from_settings(settings)
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    name = settings.model_name
    known = {info.weights_sha256: info.version for info in registry.versions(name)}
    builders = {
        "hog": hog_parts,
        "ssdlite": lambda: ssdlite_parts(fetch_asset(ASSETS["ssdlite-graph"], settings.cache_dir)),
    }
    registered = {}
    for label in which:
        parts = builders[label]
        artifact = make_artifact(parts(), signer)
        digest = artifact.manifest["weights_sha256"]
        if digest in known:
            registered[label] = known[digest]
            yield f"{label}: already registered as {name} version {known[digest]}"
            continue
        version = registry.register(name, artifact, actor=settings.actor, reason=f"setup: {label}")
        registered[label] = version
        yield f"{label}: registered as {name} version {version}"
    if registry.active(name) is None:
        label = which[-1]
        registry.promote(name, registered[label], actor=settings.actor, reason="setup: first model")
        yield f"{name} version {registered[label]} ({label}) now serves"
    else:
        yield f"{name} version {registry.active(name)} serves (unchanged)"
