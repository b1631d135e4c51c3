"""What every ``secmlops`` command group shares."""

from __future__ import annotations

import click

from streams.settings import Settings, SettingsError

__all__ = ["cli_settings"]


def cli_settings() -> Settings:
    """Settings from the environment, or a clean CLI error naming the bad variable."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
