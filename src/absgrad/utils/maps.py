"""The map step shared by every method: channel reduction and per-image min-max scaling."""

from __future__ import annotations

import torch
from torch import Tensor

from absgrad.errors import AbsgradError


def minmax(maps: Tensor) -> Tensor:
    """Min-max scale each map of ``(B, H, W)`` to [0, 1]; a constant map becomes all ones."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(
        span > 0,
        (flat - lo) / torch.where(span > 0, span, torch.ones_like(span)),
        torch.ones_like(flat),
    )
    return out.reshape(maps.shape)


def to_map(attribution: Tensor) -> Tensor:
    """Attribution ``(B, C, H, W)`` -> map ``(B, H, W)``: sum over channels of ``|A|``, then min-max.

    A ``(B, H, W)`` input (already one channel, e.g. Grad-CAM) is only min-max scaled.
    """
    if attribution.dim() == 4:
        attribution = attribution.abs().sum(dim=1)
    elif attribution.dim() != 3:
        raise AbsgradError(
            f"attribution must be (B, C, H, W) or (B, H, W), got {tuple(attribution.shape)}"
        )
    attribution = attribution.float()
    if not torch.isfinite(attribution).all():
        raise AbsgradError(
            "attribution contains NaN or infinite values: the model's gradients are not finite"
        )
    return minmax(attribution)
