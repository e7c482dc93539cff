"""The ``deterministic`` run option: the process switches that make a GPU repeat its numbers.

On a GPU the same computation can give different float results from one call to the next:
cuDNN's benchmark mode picks the fastest convolution algorithm by timing, several backward
kernels (max-pooling, some convolution algorithms) add with atomics in whatever order threads
finish, cuBLAS splits reductions differently without a fixed workspace, and TF32 (on by
default for cuDNN convolutions) rounds their inputs to 10 mantissa bits. Measured on one H200
with ResNet-50 (docs/performance.md), this made the protocol runner and the per-method loop
differ by 6e-3 in a score; with the switches below, by 5e-10, for about 8% more time.

``set_deterministic()`` sets them for this process (the worker calls it before it loads the
model and before every unit, so local, subprocess and Ray workers alike run with them);
``kept()`` restores the caller's switches after an in-process run. On a CPU, PyTorch's kernels
are already deterministic: the switches change neither the numbers nor the time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator

import torch

#: cuBLAS's fixed workspace setting that makes its reductions repeatable (NVIDIA's docs)
CUBLAS_WORKSPACE = ":4096:8"
CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"


@dataclasses.dataclass(frozen=True)
class Switches:
    """The process-wide settings the option touches."""

    algorithms: bool  # torch.use_deterministic_algorithms
    warn_only: bool  # ... with a warning, not an error, for ops that have no such kernel
    cudnn_benchmark: bool
    cudnn_deterministic: bool
    #: TF32 of cuDNN convolutions and cuBLAS matmuls, through the API the process uses:
    #: ("legacy", allow_tf32, allow_tf32) or, once something set PyTorch's newer
    #: ``fp32_precision`` settings (reading the legacy flags then raises), ("new", conv, matmul)
    tf32: tuple[str, bool | str, bool | str]
    cublas_workspace: str | None  # the environment variable, None when unset

    @property
    def tf32_off(self) -> bool:
        api, conv, matmul = self.tf32
        return (conv, matmul) == ((False, False) if api == "legacy" else ("ieee", "ieee"))


def _tf32() -> tuple[str, bool | str, bool | str]:
    try:
        return "legacy", torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    except RuntimeError:  # PyTorch refuses legacy reads after the newer API was used
        conv = torch.backends.cudnn.conv.fp32_precision
        return "new", conv, torch.backends.cuda.matmul.fp32_precision


def _set_tf32(tf32: tuple[str, bool | str, bool | str]) -> None:
    api, conv, matmul = tf32
    if api == "legacy":
        torch.backends.cudnn.allow_tf32 = conv
        torch.backends.cuda.matmul.allow_tf32 = matmul
    else:
        torch.backends.cudnn.conv.fp32_precision = conv
        torch.backends.cuda.matmul.fp32_precision = matmul


def current() -> Switches:
    """This process's switches now."""
    return Switches(
        algorithms=torch.are_deterministic_algorithms_enabled(),
        warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        cudnn_deterministic=torch.backends.cudnn.deterministic,
        tf32=_tf32(),
        cublas_workspace=os.environ.get(CUBLAS_ENV),
    )


def _set_algorithms(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms``, without importing the compile stack.

    The public function imports ``torch._inductor.config`` (and with it ``torch._dynamo`` and
    sympy: seconds of start-up) to copy the mode into it; an eager run needs none of that.
    Where the inductor is not loaded, the process flag is set alone and :func:`sync_inductor`
    copies it when a compiled engine loads the inductor."""
    if "torch._inductor.config" in sys.modules or not hasattr(
        torch._C, "_set_deterministic_algorithms"
    ):
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


def sync_inductor() -> None:
    """Give the inductor this process's deterministic mode (before ``torch.compile``), as
    ``torch.use_deterministic_algorithms`` would have."""
    import torch._inductor.config as inductor_config

    inductor_config.deterministic = torch.are_deterministic_algorithms_enabled()


def _apply(s: Switches) -> None:
    _set_algorithms(s.algorithms, s.warn_only)
    torch.backends.cudnn.benchmark = s.cudnn_benchmark
    torch.backends.cudnn.deterministic = s.cudnn_deterministic
    _set_tf32(s.tf32)
    if s.cublas_workspace is None:
        os.environ.pop(CUBLAS_ENV, None)
    else:
        os.environ[CUBLAS_ENV] = s.cublas_workspace


def set_deterministic(on: bool = True) -> None:
    """Set the deterministic switches in this process when ``on``: deterministic algorithms
    (an op without a deterministic kernel warns and runs; it does not stop the run), cuDNN
    without benchmark mode and deterministic, no TF32, cuBLAS's fixed workspace. Leave them as
    they are when not (the process's own settings: PyTorch's defaults unless changed).

    cuBLAS reads its workspace setting when it first runs in a process: call this before the
    first matrix product on the GPU (the worker does, before it loads the model). A workspace
    setting already in the environment (e.g. ``:16:8``) is kept."""
    if not on:
        return
    api = _tf32()[0]
    _apply(
        Switches(
            algorithms=True,
            warn_only=True,
            cudnn_benchmark=False,
            cudnn_deterministic=True,
            tf32=("legacy", False, False) if api == "legacy" else ("new", "ieee", "ieee"),
            cublas_workspace=os.environ.get(CUBLAS_ENV) or CUBLAS_WORKSPACE,
        )
    )


def is_deterministic(s: Switches | None = None) -> bool:
    """Whether the switches (default: this process's) are those ``set_deterministic`` sets."""
    s = current() if s is None else s
    return (
        s.algorithms
        and s.warn_only
        and not s.cudnn_benchmark
        and s.cudnn_deterministic
        and s.tf32_off
        and s.cublas_workspace is not None
    )


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Restore this process's switches on leaving (for runs inside the caller's process)."""
    before = current()
    try:
        yield
    finally:
        _apply(before)


__all__ = [
    "CUBLAS_WORKSPACE",
    "Switches",
    "current",
    "is_deterministic",
    "kept",
    "set_deterministic",
    "sync_inductor",
]
