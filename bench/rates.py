"""Rates and ratios the benchmarks report, from outcome times.

Why one module: the gate and detector benchmarks compare configurations
side by side on a shared, noisy machine, and must compute a rate and a
paired ratio the same way.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["drain_rate", "paired", "steady_rate"]


def steady_rate(stamps: list[int]) -> float:
    """Frames/s between the 10th and the 90th percentile of the outcome times (ms).

    The ends are left out: the first batches wait for the worker's start and
    the gate's first deadline, the last ones for stragglers; either end
    moved a ratio by a third in earlier runs.  Outcomes of one batch share
    a time, so too few distinct times give no rate (nan).
    """
    stamps = sorted(stamps)
    lo, hi = len(stamps) // 10, len(stamps) * 9 // 10
    if len(set(stamps[lo : hi + 1])) < 3 or stamps[hi] == stamps[lo]:
        return math.nan
    return (hi - lo) / ((stamps[hi] - stamps[lo]) / 1000)


def drain_rate(stamps: list[int], sent_ms: float) -> float:
    """Frames/s from the first frame sent to the last outcome (wall-clock ms): the whole
    backlog, and so every agent's work on every frame.

    The steady window of :func:`steady_rate` leaves out what runs ahead of the
    detector: on a backlog the image monitors (integrity, drift, energy, patch)
    read every frame while the detector is still on its first batches, and they
    had finished before that window began.
    """
    if not stamps or max(stamps) <= sent_ms:
        return math.nan
    return len(stamps) / ((max(stamps) - sent_ms) / 1000)


def paired(rates: list[float], base: list[float]) -> str:
    """The median of paired ratios, with their range in brackets when there are several:
    each run against the base's run of the same repeat, so that a slow or fast spell of
    a shared machine moves both sides of a ratio."""
    ratios = [r / b for r, b in zip(rates, base, strict=True)]
    spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{float(np.median(ratios)):.2f}{spread}"
