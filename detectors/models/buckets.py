"""Batch-size buckets: pad a GPU batch to one of a few sizes, so each size is compiled once.

Why: cuDNN builds (and caches) an execution plan for every new input shape it
sees, and for a network of dozens of convolutions that can take seconds.  A
stream batches whatever has arrived, so batch sizes wander over 1..max.  On
the first H200 run (docs/benchmarks.md, "On a GPU"), the squeezing check,
which runs SSDLite on batches of varying size, cost 40 ms a frame, against
0.29 ms for the detector's fixed batches of 64.  Padding each
batch up to the next power of 8 (capped at the largest batch) leaves three
shapes up to 64, which :func:`bucket_sizes` lists for a warm-up at load.  Why
8 and not 2: on the H200 a batch of 8 took 6.4 ms against 6.2 ms for one
frame, and 64 took 14.7 ms against 13 ms for 32 (fp16, the sweep in
docs/benchmarks.md), so coarse buckets cost the stream little, and every
shape fewer saves seconds at each worker start and model swap.  The second
H200 run measured those seconds: 3.1 to 5.6 s for each new shape, all of it
cuDNN planning the network's convolutions (``bench/gpu_first_batch.py``).  So
the smallest bucket is 8, not 1: a lone frame costs the same in a batch of 8
(171 and 1,255 frames/s at batch 1 and 8, fp16), and a load warms two sizes
up to 64 instead of three.  On a CPU no such plans are built and padding would
only add work, so callers pad on CUDA only.
"""

from __future__ import annotations

import torch

__all__ = ["bucket", "bucket_sizes", "pad_batch"]


def bucket(n: int, largest: int) -> int:
    """The batch size ``n`` frames are padded to: the next power of 8 from 8 up, at most
    ``largest``.

    >>> [bucket(n, 48) for n in (1, 2, 8, 9, 33, 48)]
    [8, 8, 8, 48, 48, 48]
    """
    if not 1 <= n <= largest:
        raise ValueError(f"a batch of {n} frames does not fit the largest batch, {largest}")
    size = 8
    while size < n:
        size *= 8
    return min(largest, size)


def bucket_sizes(largest: int) -> list[int]:
    """Every size :func:`bucket` can return for batches up to ``largest``.

    >>> bucket_sizes(64), bucket_sizes(48), bucket_sizes(512), bucket_sizes(4)
    ([8, 64], [8, 48], [8, 64, 512], [4])
    """
    return sorted({bucket(n, largest) for n in range(1, largest + 1)})


def pad_batch(stack: torch.Tensor, largest: int) -> torch.Tensor:
    """``stack`` ``(n, ...)`` with zero rows appended up to ``bucket(n, largest)`` rows."""
    n = stack.shape[0]
    size = bucket(n, largest)
    if size == n:
        return stack
    return torch.cat((stack, stack.new_zeros((size - n, *stack.shape[1:]))))
