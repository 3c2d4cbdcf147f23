"""Keep freed host memory in the process, so a CPU training step does not fault in fresh pages.

glibc hands every block over 128 KiB (a weight gradient, a layer's activity at batch 100) back to the
kernel when it is freed, and the next step's allocation of the same size faults it in again, page by
page, zeroed: `benchmarks/step_overhead.py` counted 2,900 page faults a training step of `quick` in
fp32, 4,600 in bf16 and 12,800 of `hinton-mnist`, and steps 9-22 % faster without them. Raising glibc's
thresholds keeps those blocks in the heap for reuse, as a caching allocator does (what PyTorch's CPU
tuning guide gets from jemalloc or tcmalloc). Blocks over 32 MiB are still mapped and returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt's parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit: larger blocks are always mapped
_KEEP = 1 << 30  # free memory at the heap's top kept, not trimmed, up to this much
# the largest tensor a CPU pass should make: under the ceiling, with room for the temporaries of the ops on it
HEAP_BLOCK_BYTES = 24 * 1024 * 1024


def rows_in_heap(row_bytes: int) -> int:
    """How many rows of `row_bytes` one CPU tensor may hold and still come from the heap, not from a fresh
    mapping faulted in page by page (glibc maps every block over 32 MiB, whatever its thresholds)."""
    return max(1, HEAP_BLOCK_BYTES // row_bytes)


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc's allocator to reuse freed blocks instead of returning them; once per process.

    Returns whether it applied: False on other C libraries (macOS, Windows, musl), which are left alone.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    done = [libc.mallopt(option, value) == 1 for option, value in
            ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX), (_M_TRIM_THRESHOLD, _KEEP), (_M_TOP_PAD, 64 * 1024 * 1024))]
    return all(done)
