"""Separable Gaussian blur with reflect padding: BlurIG's scale-space path and the insertion
metric's start image (:func:`absgrad.metrics.blurred`) both use it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel1d(sigma: float, radius: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The normalised 1-D Gaussian of ``sigma`` sampled at ``-radius .. radius``, ``(2r+1,)``."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def reflect_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices ``(n + 2*pad,)`` for reflect padding (edge not repeated, scipy's "mirror").

    Unlike ``F.pad(mode="reflect")`` also valid when ``pad >= n``: the reflection repeats.
    """
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def separable_blur(x: Tensor, kernel: Tensor, dims: tuple[int, ...] = (3, 2)) -> Tensor:
    """Convolve ``x (B, C, H, W)`` with ``kernel (2r+1,)`` along each of ``dims`` in turn (W then
    H by default), with reflect padding of ``r`` (any image size); the output has ``x``'s shape.

    The order of the passes changes only float rounding.
    """
    c, size = x.shape[1], kernel.shape[0]
    k = kernel.to(device=x.device, dtype=x.dtype)
    out = x
    for dim in dims:
        out = out.index_select(dim, reflect_index(x.shape[dim], size // 2, x.device))
        shape = (1, 1, size, 1) if dim == 2 else (1, 1, 1, size)
        out = F.conv2d(out, k.view(shape).expand(c, *shape[1:]), groups=c)
    return out


def gaussian_blur(x: Tensor, sigma: float, kernel_size: int = 41) -> Tensor:
    """Blur ``x (B, C, H, W)`` with a Gaussian of ``sigma`` (kernel ``kernel_size``, reflect padding).

    ``sigma = 0`` returns ``x``. The radius is capped at ``min(H, W) - 1`` (one reflection).
    """
    if sigma <= 0:
        return x
    radius = min(kernel_size // 2, x.shape[-1] - 1, x.shape[-2] - 1)
    return separable_blur(x, gaussian_kernel1d(sigma, radius, x.dtype))
