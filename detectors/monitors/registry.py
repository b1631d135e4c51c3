"""Finding monitors: every class registered under the entry-point group ``secmlops.detectors``.

The built-in monitors register themselves in this project's
``pyproject.toml`` exactly as a third-party plug-in would, so there is one
way in.  ``SECMLOPS_MONITORS`` picks which run: ``all`` (the default),
``none``, or a comma-separated list of names; a ``-name`` entry removes one
from ``all`` (``all,-adversarial.squeeze``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from detectors.monitors.base import Monitor

__all__ = ["GROUP", "MonitorLoadError", "available", "load", "parse_params", "select"]

GROUP = "secmlops.detectors"


class MonitorLoadError(ValueError):
    """A monitor name is unknown, or its entry point does not give a usable Monitor class."""


def _check(entry: EntryPoint, cls: object) -> type[Monitor]:
    where = f"entry point {entry.name!r} ({entry.value})"
    if not (isinstance(cls, type) and issubclass(cls, Monitor)):
        raise MonitorLoadError(f"{where} is not a subclass of detectors.monitors.base.Monitor")
    for attr in ("name", "kind", "consumes"):
        if not isinstance(getattr(cls, attr, None), str):
            raise MonitorLoadError(f"{where}: {cls.__name__}.{attr} must be set")
    if cls.name != entry.name:
        raise MonitorLoadError(f"{where}: the class calls itself {cls.name!r}; names must agree")
    if cls.consumes not in ("frames", "predictions", "both"):
        raise MonitorLoadError(f"{where}: consumes={cls.consumes!r} is not frames/predictions/both")
    return cls


def _entries() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of every registered monitor, sorted."""
    return sorted(_entries())


def load(name: str) -> type[Monitor]:
    """The monitor class registered as ``name``.

    Raises
    ------
    MonitorLoadError
        Unknown name (the message lists the known ones), an import error in
        the plug-in, or a class that breaks the contract.
    """
    entries = _entries()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none (is the project installed?)"
        raise MonitorLoadError(f"no monitor named {name!r}; registered: {known}")
    try:
        cls = entries[name].load()
    except Exception as exc:  # a broken plug-in is reported, with its own error
        raise MonitorLoadError(f"monitor {name!r} failed to import: {exc!r}") from exc
    return _check(entries[name], cls)


def select(spec: Iterable[str]) -> list[type[Monitor]]:
    """The monitor classes a ``SECMLOPS_MONITORS``-style list enables, in name order."""
    names: set[str] = set()
    for item in (s.strip() for s in spec):
        if item in ("", "none"):
            continue
        if item == "all":
            names |= set(available())
        elif item.startswith("-"):
            load(item[1:])  # a typo in an exclusion is an error too
            names.discard(item[1:])
        else:
            names.add(item)
    return [load(name) for name in sorted(names)]


def parse_params(
    items: Iterable[str], classes: Sequence[type[Monitor]]
) -> dict[str, dict[str, Any]]:
    """``MONITOR.PARAM=VALUE`` settings (``adversarial.squeeze.budget=0.1``) as
    ``{monitor: {param: value}}``, for the monitors' constructors.

    Why a setting and not code: a monitor's hyperparameters trade detection for
    cost (squeezing's ``budget`` is model runs), and the right trade depends on
    the host.  ``secmlops calibrate`` stores them with each camera's calibration,
    so they are versioned with the model like the thresholds.  VALUE is read as
    JSON (``0.1``, ``32``, ``true``), else taken as a string; an unknown monitor or
    parameter is a :class:`MonitorLoadError` that lists the known ones.
    """
    by_name = {cls.name: cls for cls in classes}
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        monitor, _, param = key.strip().rpartition(".")
        if not sep or not monitor or not param:
            raise MonitorLoadError(f"{item!r}: expected MONITOR.PARAM=VALUE")
        cls = by_name.get(monitor)
        if cls is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise MonitorLoadError(f"{item!r}: {monitor!r} is not an enabled monitor ({known})")
        if param not in cls.params:
            known = ", ".join(cls.params) or "none"
            raise MonitorLoadError(f"{item!r}: {monitor} has no parameter {param!r} ({known})")
        default = cls()
        if param in default.calibration():
            raise MonitorLoadError(f"{item!r}: calibration sets {monitor}'s {param} itself")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw.strip()
        if isinstance(value, bool) != isinstance(getattr(default, param), bool):
            raise MonitorLoadError(f"{item!r}: {param} is {getattr(default, param)!r} by default")
        out.setdefault(monitor, {})[param] = value
    for monitor, kwargs in out.items():  # the constructor checks ranges: fail before footage
        try:
            by_name[monitor](**kwargs)
        except (TypeError, ValueError) as exc:
            raise MonitorLoadError(f"{monitor} with {kwargs}: {exc}") from exc
    return out
