"""``secmlops models``: build, sign, register, promote, roll back and verify detector models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from model_store.errors import ModelStoreError
from streams.cli_support import cli_settings
from streams.settings import Settings

__all__ = ["models"]


def _registry(settings: Settings):  # noqa: ANN202 - imported lazily
    from model_store.registry import Registry
    from model_store.signing import Verifier
    from streams.clients import redis_client

    return Registry(redis_client(settings), Verifier.from_settings(settings))


def _announce(settings: Settings, command: str, version: str, reason: str) -> None:
    """Broadcast the change on pds.control and record it on pds.decisions."""
    from streams.control import announce

    announce(
        settings,
        command=command,
        model=settings.model_name,
        version=version,
        actor=settings.actor,
        reason=reason,
    )


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ModelStoreError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
def models() -> None:
    """Signed, versioned detector models in the Redis registry.

    \b
    Keys: SECMLOPS_MODEL_SIGNING_KEY signs (whoever builds models),
    SECMLOPS_MODEL_TRUSTED_KEYS verifies (every worker); 'models keygen'
    makes a pair.  The model name is SECMLOPS_MODEL_NAME (default pedestrian).
    """


@models.command("keygen")
def keygen() -> None:
    """Print a new Ed25519 key pair as the two environment variables."""
    from model_store.signing import new_key_pair

    pair = new_key_pair()
    click.echo(f"SECMLOPS_MODEL_SIGNING_KEY={pair.private_hex}")
    click.echo(f"SECMLOPS_MODEL_TRUSTED_KEYS={pair.public_hex}")


@models.command("build")
@click.argument("architecture", type=click.Choice(["hog", "ssdlite", "torchvision"]))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the signed artifact.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, exists=True),
    help="torchvision: the state dict (.safetensors, .pt, .pth).",
)
@click.option("--arch", "tv_arch", help="torchvision: e.g. fasterrcnn_resnet50_fpn.")
@click.option("--num-classes", type=int, default=91, show_default=True)
@click.option("--person-label", type=int, default=1, show_default=True)
def build(
    architecture: str,
    out: Path,
    weights: Path | None,
    tv_arch: str | None,
    num_classes: int,
    person_label: int,
) -> None:
    """Make a signed artifact: hog (OpenCV's SVM), ssdlite (from the pinned TF graph),
    or torchvision (your own weights file)."""
    from model_store.catalog import hog_parts, make_artifact, ssdlite_parts, torchvision_parts
    from model_store.signing import Signer
    from streams.assets import ASSETS, AssetError, fetch_asset

    settings = cli_settings()
    signer = Signer.from_settings(settings)
    if architecture == "hog":
        parts = hog_parts()
    elif architecture == "ssdlite":
        try:
            graph = fetch_asset(ASSETS["ssdlite-graph"], settings.cache_dir, quiet=True)
        except AssetError as exc:
            raise click.ClickException(str(exc)) from exc
        parts = ssdlite_parts(graph)
    else:
        if weights is None or tv_arch is None:
            raise click.UsageError("torchvision needs --arch and --weights")
        parts = torchvision_parts(
            tv_arch, weights, num_classes=num_classes, person_label=person_label
        )
    artifact = make_artifact(parts, signer)
    artifact.save(out)
    click.echo(
        f"{out}: {artifact.manifest['architecture']}, signed by {artifact.signer}, "
        f"weights sha256 {artifact.manifest['weights_sha256'][:16]}…"
    )


@models.command("register")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--reason", default="", help="Why, for the audit log.")
def register(folder: Path, reason: str) -> None:
    """Verify an artifact folder and store it as the next version."""
    from model_store.artifacts import Artifact

    settings = cli_settings()
    version = _registry(settings).register(
        settings.model_name, Artifact.load(folder), actor=settings.actor, reason=reason
    )
    click.echo(f"{settings.model_name} version {version} registered")


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """Every version: architecture, signer, status, which one serves."""
    settings = cli_settings()
    infos = _registry(settings).versions(settings.model_name)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    if not infos:
        click.echo(f"no versions of {settings.model_name!r} (see 'secmlops models setup')")
    for i in infos:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(i.registered_at))
        click.echo(
            f"{'*' if i.active else ' '} {i.version:>4}  {i.architecture:28} {i.status:4} "
            f"{when}  by {i.registered_by}  signer {i.signer}"
        )


@models.command("show")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True)
def show(version: str, as_json: bool) -> None:
    """One version's manifest, registration record and the activation history."""
    settings = cli_settings()
    registry = _registry(settings)
    doc = {
        "info": registry.info(settings.model_name, version).as_dict(),
        "manifest": registry.artifact(settings.model_name, version).manifest,
        "history": registry.history(settings.model_name, limit=20),
    }
    click.echo(json.dumps(doc, indent=2) if as_json else _pretty(doc))


def _pretty(doc: dict) -> str:
    lines = [f"{k}: {v}" for k, v in doc["info"].items()]
    lines += ["manifest:"] + [f"  {k}: {v}" for k, v in sorted(doc["manifest"].items())]
    lines += ["history (newest first):"] + [
        f"  {e['action']:8} -> {e['version']} by {e['actor']}: {e['reason']}"
        for e in doc["history"]
    ]
    return "\n".join(lines)


@models.command("promote")
@click.argument("version")
@click.option("--reason", default="", help="Why, for the audit log.")
@click.option(
    "--canary",
    type=click.FloatRange(min=1),
    help="Run VERSION in shadow beside the serving one for this many seconds first; "
    "the policy promotes it then, unless its predictions departed (it is marked bad).",
)
def promote(version: str, reason: str, canary: float | None) -> None:
    """Make VERSION serve; workers switch between batches.

    \b
    Examples:
      secmlops models promote 3 --reason "retrained on November's data"
      secmlops models promote 3 --canary 600     # ten minutes in shadow first
    """
    settings = cli_settings()
    registry = _registry(settings)
    if canary is not None:
        record = registry.start_canary(
            settings.model_name, version, seconds=canary, actor=settings.actor, reason=reason
        )
        from streams.control import audit

        audit(
            settings,
            action="canary",
            subject=f"{settings.model_name}@{version}",
            actor=settings.actor,
            reason=reason or f"shadow for {canary:g} s before serving",
        )
        click.echo(
            f"{settings.model_name}: version {version} runs in shadow beside "
            f"{record['serving']} for {canary:g} s; it serves after that unless its "
            "predictions depart ('secmlops alerts -f' to watch)"
        )
        return
    previous = registry.promote(settings.model_name, version, actor=settings.actor, reason=reason)
    _announce(settings, "promote", version, reason)
    click.echo(f"{settings.model_name}: {previous or '-'} -> {version}")


@models.command("rollback")
@click.option("--to", "target", help="A specific version (default: the last good one).")
@click.option("--reason", required=True, help="Why, for the audit log.")
def rollback(target: str | None, reason: str) -> None:
    """Serve the last known-good version again; the current one is marked bad."""
    settings = cli_settings()
    old, new = _registry(settings).rollback(
        settings.model_name, actor=settings.actor, reason=reason, to=target
    )
    _announce(settings, "rollback", new, reason)
    click.echo(f"{settings.model_name}: {old} -> {new} ({old} marked bad)")


@models.command("degrade")
@click.option("--from", "source", help="The version to copy (default: the serving one).")
@click.option("--mode", type=click.Choice(["blind", "noise"]), default="blind", show_default=True)
@click.option(
    "--strength",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="blind: bias shift; noise: times each tensor's std.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--promote", "then_promote", is_flag=True, help="Make it serve at once.")
def degrade(source: str | None, mode: str, strength: float, seed: int, then_promote: bool) -> None:
    """RED-TEAM DRILL: register a deliberately degraded, validly signed copy of a version.

    It stands for the bad model signatures cannot stop (a broken retraining,
    a poisoned dataset, a stolen signing key).  Promote it mid-drive and the
    rollback policy should take it out within seconds (docs/policy.md).
    Needs SECMLOPS_MODEL_SIGNING_KEY, like any registration.
    """
    from model_store.redteam import degrade as make_degraded
    from model_store.signing import Signer

    settings = cli_settings()
    registry = _registry(settings)
    name = settings.model_name
    source = source or registry.active(name)
    if source is None:
        raise click.ClickException(f"no version of {name!r} serves; name one with --from")
    artifact = make_degraded(
        registry.load(name, source),
        registry.verifier,
        Signer.from_settings(settings),
        mode=mode,
        strength=strength,
        seed=seed,
    )
    reason = f"red-team drill: {mode} x{strength:g} copy of version {source}"
    version = registry.register(name, artifact, actor=settings.actor, reason=reason)
    click.echo(f"{name} version {version} registered: {reason}")
    if then_promote:
        registry.promote(name, version, actor=settings.actor, reason=reason)
        _announce(settings, "promote", version, reason)
        click.echo(f"{name}: version {version} now serves")


@models.command("verify")
@click.argument("target")
def verify(target: str) -> None:
    """Check a registered VERSION, or an artifact folder, against the trusted keys."""
    from model_store.artifacts import Artifact
    from model_store.signing import Verifier

    settings = cli_settings()
    if Path(target).is_dir():
        artifact = Artifact.load(Path(target))
        artifact.verify(Verifier.from_settings(settings))
    else:
        artifact = _registry(settings).load(settings.model_name, target)
    click.echo(
        f"{target}: OK, signed by {artifact.signer}, "
        f"weights sha256 {artifact.manifest['weights_sha256']}"
    )


@models.command("audit")
@click.option("--count", "-n", default=20, show_default=True)
def audit(count: int) -> None:
    """Who did what to which model, when and why (newest first)."""
    for e in _registry(cli_settings()).audit(count):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
        click.echo(f"{when}  {e.actor:12} {e.action:9} {e.model}@{e.version}  {e.reason}")


@models.command("setup")
def setup() -> None:
    """Build, sign and register both real models (hog, then ssdlite); promote hog first."""
    from model_store.setup import setup_models

    settings = cli_settings()
    for line in setup_models(settings):
        click.echo(line)
