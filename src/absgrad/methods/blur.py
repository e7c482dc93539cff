"""Separable Gaussian blur with reflect padding (BlurIG's scale-space path)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel1d(sigma: float, radius: int, dtype: torch.dtype = torch.float32) -> Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def gaussian_blur(x: Tensor, sigma: float, kernel_size: int = 41) -> Tensor:
    """Blur ``x (B, C, H, W)`` with a Gaussian of ``sigma`` (kernel ``kernel_size``, reflect padding).

    ``sigma = 0`` returns ``x``. The radius is capped at ``min(H, W) - 1`` so reflect padding fits.
    """
    if sigma <= 0:
        return x
    radius = min(kernel_size // 2, x.shape[-1] - 1, x.shape[-2] - 1)
    k = gaussian_kernel1d(sigma, radius, x.dtype).to(x.device)
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
