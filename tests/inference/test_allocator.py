"""The allocator tuning: freed large buffers are reused instead of faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Runs a layer whose output (38.5 MiB) is above glibc's largest mmap threshold five times and
# prints the minor page faults of each round.
PROBE = r"""
import resource, torch
from absgrad.inference.allocator import tune_allocator
tuned = tune_allocator()
conv = torch.nn.Conv2d(16, 96, 1)
x = torch.randn(8, 16, 112, 112)
faults = []
with torch.inference_mode():
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.relu(conv(x)).sum()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(tuned, *faults)
"""
OUTPUT_PAGES = 8 * 96 * 112 * 112 * 4 // os.sysconf("SC_PAGE_SIZE")


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError):
        return False


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _glibc(),
    reason="the allocator tuning applies to Linux with glibc only",
)


def _probe(env_value: str | None) -> tuple[bool, list[int]]:
    env = dict(os.environ)
    env.pop("ABSGRAD_TUNE_MALLOC", None)
    if env_value is not None:
        env["ABSGRAD_TUNE_MALLOC"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", [int(v) for v in out[1:]]


@linux_only
def test_tuned_allocator_reuses_freed_buffers():
    tuned, faults = _probe(None)
    assert tuned
    # the first round faults its buffers in; later rounds reuse them
    assert faults[0] > OUTPUT_PAGES
    assert max(faults[2:]) < OUTPUT_PAGES // 20


@linux_only
def test_opt_out_leaves_glibc_default_and_every_round_faults():
    tuned, faults = _probe("0")
    assert not tuned
    assert min(faults) > OUTPUT_PAGES  # glibc maps and unmaps the output every round


def test_tuning_is_idempotent():
    from absgrad.inference.allocator import tune_allocator

    assert tune_allocator() == tune_allocator()
