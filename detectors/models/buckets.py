"""Batch-size buckets: pad a GPU batch to one of a few sizes, so each size is compiled once.

Why: cuDNN builds (and caches) an execution plan for every new input shape it
sees, and for a network of dozens of convolutions that can take seconds.  A
stream batches whatever has arrived, so batch sizes wander over 1..max.  On
the first H200 run (docs/benchmarks.md, "On a GPU"), the squeezing check,
which runs SSDLite on batches of varying size, cost 40 ms a frame, against
0.29 ms for the detector's fixed batches of 64.  Padding each
batch up to the next power of two (capped at the largest batch) leaves at most
``log2(max) + 1`` shapes, all of which :func:`bucket_sizes` lists for a warm-up
at load.  The padding costs at most twice the frames of a small batch, where a
GPU is bound by launches rather than arithmetic.  On a CPU no such plans are
built and padding would only add work, so callers pad on CUDA only.
"""

from __future__ import annotations

import torch

__all__ = ["bucket", "bucket_sizes", "pad_batch"]


def bucket(n: int, largest: int) -> int:
    """The batch size ``n`` frames are padded to: the next power of two, at most ``largest``.

    >>> [bucket(n, 48) for n in (1, 2, 3, 5, 33, 48)]
    [1, 2, 4, 8, 48, 48]
    """
    if not 1 <= n <= largest:
        raise ValueError(f"a batch of {n} frames does not fit the largest batch, {largest}")
    return min(largest, 1 << (n - 1).bit_length())


def bucket_sizes(largest: int) -> list[int]:
    """Every size :func:`bucket` can return for batches up to ``largest``.

    >>> bucket_sizes(64), bucket_sizes(48)
    ([1, 2, 4, 8, 16, 32, 64], [1, 2, 4, 8, 16, 32, 48])
    """
    return sorted({bucket(n, largest) for n in range(1, largest + 1)})


def pad_batch(stack: torch.Tensor, largest: int) -> torch.Tensor:
    """``stack`` ``(n, ...)`` with zero rows appended up to ``bucket(n, largest)`` rows."""
    n = stack.shape[0]
    size = bucket(n, largest)
    if size == n:
        return stack
    return torch.cat((stack, stack.new_zeros((size - n, *stack.shape[1:]))))
