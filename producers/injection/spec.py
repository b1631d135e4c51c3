"""Injection specs: what to inject, where, with which parameters, checked before anything runs.

A spec on the command line reads ``TYPE[:NAME=VALUE,...][@START-END][#CAMERA]``,
for example ``pgd:eps=8/255,steps=10@100-200`` or ``fog:density=0.7,ramp=60@300-``.
Frame ranges are half-open ``[START, END)`` in the source's own frame numbers
(before ``--start`` is applied: frame 0 is the first frame of the file);
``START-`` runs to the end.  A schedule file (YAML or JSON) holds the same
specs as a list; see ``examples/schedules/``.  Values may be fractions
(``8/255``).  Unknown types, unknown parameters and out-of-range values are
errors that say what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = ["PARAMS", "InjectionSpec", "SpecError", "load_schedule", "parse_spec"]


class SpecError(ValueError):
    """A spec or schedule is malformed; the message says where and what is allowed."""


@dataclass(frozen=True)
class Param:
    default: float
    lo: float
    hi: float
    help: str


# Every injection type, its family and its parameters: the one place they are defined.
_RAMP = Param(0, 0, 100_000, "frames over which the strength grows from 0 to full")
PARAMS: dict[str, tuple[str, dict[str, Param]]] = {
    "brightness": (
        "natural",
        {"delta": Param(60, -255, 255, "added to every pixel"), "ramp": _RAMP},
    ),
    "contrast": (
        "natural",
        {"factor": Param(0.5, 0, 4, "contrast gain around the mean"), "ramp": _RAMP},
    ),
    "fog": (
        "natural",
        {"density": Param(0.6, 0, 1, "fraction of the image veiled"), "ramp": _RAMP},
    ),
    "blur": ("natural", {"sigma": Param(3, 0, 50, "Gaussian blur sigma, pixels"), "ramp": _RAMP}),
    "noise": (
        "natural",
        {
            "sigma": Param(12, 0, 128, "Gaussian noise sigma, grey levels"),
            "ramp": _RAMP,
            "seed": Param(0, 0, 2**31, "noise seed"),
        },
    ),
    "jpeg": ("natural", {"quality": Param(15, 1, 100, "re-encode quality"), "ramp": _RAMP}),
    "fgsm": ("adversarial", {"eps": Param(8 / 255, 0, 1, "L-inf bound, image in [0,1]")}),
    "pgd": (
        "adversarial",
        {
            "eps": Param(8 / 255, 0, 1, "L-inf bound, image in [0,1]"),
            "steps": Param(10, 1, 1000, "iterations"),
            "alpha": Param(2 / 255, 0, 1, "step size"),
            "margin": Param(1, 0, 10, "SVM margin to push below"),
        },
    ),
    "patch": (
        "adversarial",
        {
            "size": Param(0.35, 0.05, 1, "patch side / box height"),
            "steps": Param(40, 1, 1000, "iterations"),
            "alpha": Param(16 / 255, 0, 1, "step size"),
        },
    ),
    "unsigned": ("integrity", {}),
    "forged": ("integrity", {}),
    "replay": ("integrity", {"lag": Param(30, 1, 100_000, "frames back to replay from")}),
    "frozen": ("integrity", {}),
    "drop": ("integrity", {}),
    "reorder": ("integrity", {"window": Param(5, 2, 1000, "frames sent in reverse per block")}),
    # The model store, not the frames: a blinded copy of the serving version is promoted at
    # the range's first frame (streams.model_drill); the range is the time allowed to roll back.
    "degrade": ("model", {"strength": Param(2, 0.1, 100, "how far the class biases drop")}),
}


@dataclass(frozen=True)
class InjectionSpec:
    """One injection over a frame range of one camera (or of all cameras)."""

    type: str
    start: int = 0
    end: int | None = None
    camera: str | None = None
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return PARAMS[self.type][0]

    def covers(self, camera_id: str, frame: int) -> bool:
        in_range = frame >= self.start and (self.end is None or frame < self.end)
        return in_range and (self.camera is None or self.camera == camera_id)

    def strength(self, frame: int) -> float:
        """1.0 at full strength; less during the ramp that starts at ``start``."""
        ramp = self.params.get("ramp", 0)
        return 1.0 if ramp <= 0 else min(1.0, (frame - self.start + 1) / ramp)

    def describe(self) -> str:
        span = f"{self.start}-{'' if self.end is None else self.end}"
        args = ",".join(f"{k}={v:g}" for k, v in self.params.items())
        camera = f"#{self.camera}" if self.camera else ""
        return f"{self.type}{':' + args if args else ''}@{span}{camera}"


def _number(text: str, where: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise SpecError(
            f"{where}: {text!r} is not a number (fractions like 8/255 are fine)"
        ) from None


def _build(
    kind: str,
    raw_params: Mapping[str, Any],
    start: int,
    end: int | None,
    camera: str | None,
    where: str,
) -> InjectionSpec:
    if kind not in PARAMS:
        raise SpecError(f"{where}: unknown injection {kind!r}; known: {', '.join(PARAMS)}")
    allowed = PARAMS[kind][1]
    params = {}
    for name, value in raw_params.items():
        if name not in allowed:
            known = ", ".join(f"{k} ({p.help})" for k, p in allowed.items()) or "none"
            raise SpecError(f"{where}: {kind} has no parameter {name!r}; parameters: {known}")
        number = _number(str(value), f"{where}: {kind}.{name}")
        spec = allowed[name]
        if not spec.lo <= number <= spec.hi:
            raise SpecError(
                f"{where}: {kind}.{name}={number:g} is outside [{spec.lo:g}, {spec.hi:g}]"
            )
        params[name] = number
    for name, spec in allowed.items():
        params.setdefault(name, spec.default)
    if start < 0 or (end is not None and end <= start):
        raise SpecError(f"{where}: the frame range must satisfy 0 <= start < end")
    return InjectionSpec(kind, start, end, camera, params)


_SPEC = re.compile(
    r"^(?P<type>[a-z]+)(?::(?P<params>[^@#]*))?(?:@(?P<start>\d+)-(?P<end>\d*))?(?:#(?P<cam>\S+))?$"
)


def parse_spec(text: str) -> InjectionSpec:
    """Parse one ``--inject`` value.

    Examples
    --------
    >>> parse_spec("pgd:eps=8/255,steps=5@100-200").params["steps"]
    5.0
    >>> parse_spec("drop@10-20#cam-2").describe()
    'drop@10-20#cam-2'
    """
    match = _SPEC.match(text.strip())
    if not match:
        raise SpecError(
            f"--inject {text!r}: expected TYPE[:NAME=VALUE,...][@START-END][#CAMERA], "
            "e.g. 'fog:density=0.7,ramp=60@300-600'"
        )
    raw: dict[str, str] = {}
    for item in filter(None, (match["params"] or "").split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--inject {text!r}: parameter {item!r} needs NAME=VALUE")
        raw[name.strip()] = value
    start = int(match["start"]) if match["start"] else 0
    end = int(match["end"]) if match["end"] else None
    return _build(match["type"], raw, start, end, match["cam"], f"--inject {text!r}")


def load_schedule(path: Path) -> list[InjectionSpec]:
    """Read a YAML or JSON schedule: ``{"injections": [{"type": ..., "frames": [a, b]}, ...]}``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"schedule {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # any parser error is the user's file, reported as such
        raise SpecError(
            f"schedule {path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None
    items = doc.get("injections") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SpecError(f"schedule {path}: expected a top-level 'injections:' list")
    specs = []
    for n, item in enumerate(items, 1):
        where = f"schedule {path}, injection {n}"
        if not isinstance(item, dict) or "type" not in item:
            raise SpecError(f"{where}: each entry needs at least 'type'")
        unknown = set(item) - {"type", "frames", "camera", "params"}
        if unknown:
            raise SpecError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: type, frames, camera, params"
            )
        frames = item.get("frames", [0, None])
        if not (isinstance(frames, list) and len(frames) == 2):
            raise SpecError(f"{where}: 'frames' must be [start, end] (end may be null)")
        start, end = frames
        if not isinstance(start, int) or not (end is None or isinstance(end, int)):
            raise SpecError(f"{where}: frame numbers must be integers")
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise SpecError(f"{where}: 'params' must be a mapping")
        specs.append(_build(str(item["type"]), params, start, end, item.get("camera"), where))
    return specs
