"""Keep large tensor buffers in the process instead of returning them to the OS (glibc only).

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and unmaps it on ``free``. A CNN activation of a few images is larger than that
(EfficientNet-Lite0 at 224 px and 8 images: a 38 MiB tensor), so every forward pass faults
in its largest buffers page by page again. On the 2-core development VM that is about 2.5
million minor page faults in a 2-image protocol run and makes a batch-16 forward pass up to
1.7x slower than in a tight loop. :func:`tune_allocator` raises the thresholds so freed
buffers are reused: the faults drop about 10x and the same passes run at tight-loop speed.

The cost: memory freed by torch stays mapped in the process (its resident size stays at its
peak instead of shrinking). Set ``ABSGRAD_TUNE_MALLOC=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap
TRIM_THRESHOLD = (1 << 31) - 1  # keep up to 2 GiB of free heap top mapped
TOP_PAD = 1 << 26  # grow the heap 64 MiB at a time

_state: dict[str, bool] = {}


def _mallopt():
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def tune_allocator() -> bool:
    """Tune glibc ``malloc`` for repeated large tensor allocations; idempotent.

    Returns True when the allocator was tuned (now or by an earlier call), False where it does
    not apply (not Linux/glibc) or ``ABSGRAD_TUNE_MALLOC=0`` is set. Results are unchanged:
    only where freed memory goes.
    """
    if "tuned" in _state:
        return _state["tuned"]
    if os.environ.get("ABSGRAD_TUNE_MALLOC", "1").strip() == "0" or not sys.platform.startswith(
        "linux"
    ):
        _state["tuned"] = False
        return False
    mallopt = _mallopt()
    if mallopt is None:
        _state["tuned"] = False
        return False
    # Some glibc versions cap the threshold at 32 MiB; then turn mmap off for malloc instead.
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 or mallopt(M_MMAP_MAX, 0) == 1
    ok = ok and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    ok = ok and mallopt(M_TOP_PAD, TOP_PAD) == 1
    _state["tuned"] = ok
    return ok
