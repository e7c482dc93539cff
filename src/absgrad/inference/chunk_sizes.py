"""Choose chunk sizes by a short measurement (``eval_batch_size: auto``,
``grad_batch_size: auto``).

The best number of images per pass depends on the model, the image size and the device: on a
2-core CPU every forward chunk from 8 to 64 images costs about the same per image (and every
gradient chunk from 4 to 16), on a GPU larger chunks keep getting cheaper until memory runs
out. :func:`best_chunk_size` times a few passes per candidate and returns the smallest chunk
within ``tolerance`` of the best per-image cost (smaller chunks hold less memory).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

CPU_CANDIDATES = (4, 8, 16, 32, 64)
GPU_CANDIDATES = (16, 32, 64, 128, 256, 512)
#: Gradient chunks tried on a CUDA device (from the unit's image batch up): a forward+backward
#: pass keeps every activation, so the largest size stays well below the forward chunk's.
GPU_GRAD_CANDIDATES = (16, 32, 64, 128, 256)


def per_image_cost(
    step: Callable[[torch.Tensor], object],
    sample_shape: tuple[int, ...],
    device: torch.device | str,
    repeats: int,
) -> Callable[[int], float]:
    """A function ``size -> best seconds per image`` of ``step`` on ``size`` random images of
    ``sample_shape (C, H, W)`` on ``device`` (one warm-up call, then the best of ``repeats``)."""
    device = torch.device(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def cost(size: int) -> float:
        x = torch.randn(size, *sample_shape, device=device)
        step(x)
        sync()
        best = math.inf
        for _ in range(repeats):
            t = time.perf_counter()
            step(x)
            sync()
            best = min(best, time.perf_counter() - t)
        return best / size

    return cost


def forward_cost(
    model: nn.Module, sample_shape: tuple[int, ...], device: torch.device | str, repeats: int = 2
) -> Callable[[int], float]:
    """A function ``size -> best seconds per image`` of an inference forward pass of ``model``
    on ``size`` random images of ``sample_shape (C, H, W)`` (one warm-up pass each)."""

    def forward(x: torch.Tensor) -> None:
        with torch.inference_mode():
            model(x)

    return per_image_cost(forward, sample_shape, device, repeats)


def gradient_cost(
    model: nn.Module, sample_shape: tuple[int, ...], device: torch.device | str, repeats: int = 2
) -> Callable[[int], float]:
    """A function ``size -> best seconds per image`` of a forward+backward pass of ``model``
    (the input gradient of the summed first logit, as the samplers take it) on ``size`` random
    images of ``sample_shape (C, H, W)`` (one warm-up pass each)."""

    def grad(x: torch.Tensor) -> None:
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            torch.autograd.grad(model(xi)[:, 0].sum(), xi)

    return per_image_cost(grad, sample_shape, device, repeats)


def best_chunk_size(
    cost: Callable[[int], float],
    candidates: Sequence[int],
    *,
    tolerance: float = 0.03,
    stop_above: float = 1.25,
) -> tuple[int, dict[int, float]]:
    """The chunk size to use, and the measured per-image cost of each size tried.

    Sizes are tried in increasing order; the search stops once a size costs ``stop_above``
    times the best so far, or the device runs out of memory (that size is then not used).
    Returns the smallest size within ``1 + tolerance`` of the best cost.
    """
    sizes = sorted({int(c) for c in candidates})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"candidates must be positive chunk sizes, got {list(candidates)}")
    costs: dict[int, float] = {}
    for size in sizes:
        try:
            c = cost(size)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        costs[size] = c
        if c > stop_above * min(costs.values()):
            break
    if not costs:
        raise RuntimeError(f"no chunk size could be measured (tried {sizes[0]} first)")
    best = min(costs.values())
    return min(s for s, c in costs.items() if c <= best * (1 + tolerance)), costs


def auto_eval_batch_size(
    model: nn.Module, sample_shape: tuple[int, ...], device: torch.device | str
) -> tuple[int, dict[int, float]]:
    """:func:`best_chunk_size` for inference passes of ``model`` on ``device``."""
    gpu = torch.device(device).type in ("cuda", "mps")
    candidates = GPU_CANDIDATES if gpu else CPU_CANDIDATES
    return best_chunk_size(forward_cost(model, sample_shape, device), candidates)


def auto_grad_batch_size(
    model: nn.Module, sample_shape: tuple[int, ...], device: torch.device | str, batch_size: int
) -> tuple[int, dict[int, float]]:
    """Images per gradient pass: ``batch_size`` (the unit's image batch) off CUDA, where the
    per-image cost hardly changes with the size; on a CUDA device :func:`best_chunk_size` of
    forward+backward passes from ``batch_size`` up to :data:`GPU_GRAD_CANDIDATES`' largest (or
    the first size that runs out of memory)."""
    if torch.device(device).type != "cuda":
        return batch_size, {}
    candidates = [batch_size, *(c for c in GPU_GRAD_CANDIDATES if c > batch_size)]
    return best_chunk_size(gradient_cost(model, sample_shape, device), candidates)
