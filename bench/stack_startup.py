"""Measure the local stack: broker and Redis start time and resident memory.

Run with ``make bench`` (or ``python bench/stack_startup.py --runs 3``).  Each
run uses a fresh state folder and free ports; "cold" includes formatting the
broker's storage, "warm" restarts an already formatted broker.  Prints a
Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from streams.settings import Settings
from streams.stack import Stack, ephemeral_env
from streams.stack.java import find_java


def one_run(root: Path) -> dict[str, float]:
    settings = Settings.from_env({**os.environ, **ephemeral_env(root)})
    stack = Stack(settings)
    result = {}
    try:
        t0 = time.perf_counter()
        stack.kafka.start(progress=False)
        result["kafka_cold_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stack.redis.start()
        result["redis_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stack.up(progress=False)  # creates the ten topics
        result["topics_s"] = time.perf_counter() - t0
        time.sleep(5)  # let the JVM settle before reading its memory
        result["kafka_rss_mib"] = stack.kafka.proc.rss_bytes() / 2**20
        result["redis_rss_mib"] = stack.redis.proc.rss_bytes() / 2**20
        stack.kafka.stop()
        t0 = time.perf_counter()
        stack.kafka.start(progress=False)
        result["kafka_warm_s"] = time.perf_counter() - t0
    finally:
        stack.down()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="secmlops-bench-") as tmp:
            runs.append(one_run(Path(tmp)))
        print(f"run {i + 1}/{args.runs}: {runs[-1]}", flush=True)
    java = find_java(os.environ.get("SECMLOPS_JAVA"))
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Java {java.major} ({java.source})\n"
    )
    print("| measure | median | min | max |\n|---|---|---|---|")
    labels = {
        "kafka_cold_s": "broker start, first run (format + start + metadata answer), s",
        "kafka_warm_s": "broker restart, already formatted, s",
        "redis_s": "Redis start until PING, s",
        "topics_s": "create the 10 topics, s",
        "kafka_rss_mib": "broker resident memory, idle, MiB",
        "redis_rss_mib": "Redis resident memory, idle, MiB",
    }
    for key, label in labels.items():
        values = [run[key] for run in runs]
        print(
            f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
