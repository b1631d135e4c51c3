"""A process's allocator: large blocks stay on the heap once tuned, so that torch's
per-layer buffers do not cost a page fault each (streams.allocator)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from streams import allocator
from streams.allocator import tune_allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# In a fresh interpreter: how many more blocks glibc holds with mmap (mallinfo2's hblks)
# while one new 4 MiB block is live.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from streams.allocator import tune_allocator

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = MallInfo2
    tuned = tune_allocator(sys.argv[1] == "1")
    before = libc.mallinfo2().hblks
    block = libc.malloc(4 * 2**20)
    print(int(tuned), libc.mallinfo2().hblks - before)
    libc.free(block)
    """
)


def _probe(enabled: bool) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "1" if enabled else "0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


@glibc
def test_tuned_a_large_block_comes_from_the_heap_not_from_mmap():
    assert _probe(enabled=True) == (1, 0)


@glibc
def test_untuned_glibc_maps_a_large_block_of_its_own():
    # What the tuning changes: glibc's default threshold (128 KiB until a freed mapping
    # raises it) sends a fresh process's first 4 MiB block to mmap.
    assert _probe(enabled=False) == (0, 1)


def _no_c_library(*_args, **_kwargs):
    raise AssertionError("the C library was called")


def test_turned_off_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator.ctypes, "CDLL", _no_c_library)
    assert tune_allocator(enabled=False) is False


def test_another_c_library_is_left_alone(monkeypatch):
    monkeypatch.setattr(allocator.ctypes, "CDLL", _no_c_library)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert tune_allocator() is False
