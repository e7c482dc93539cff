"""Reversed maps (the paper's Proposition 1 check, superscript R; SPEC §2.4)."""

from __future__ import annotations

import torch
from torch import Tensor


def reverse(
    maps: Tensor, *, remain: float, mis: float, generator: torch.Generator | None = None
) -> Tensor:
    """Swap a map's high values with its lowest ones, keeping the very top.

    Per image of ``maps (B, H, W)``: sort the values; keep the top ``remain`` fraction; the next
    ``mis`` fraction (high values) and the bottom ``mis`` fraction change places, each side
    shuffled. Returns a new ``(B, H, W)`` tensor with the same multiset of values per image.
    """
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be a (B, H, W) tensor, got {getattr(maps, 'shape', type(maps))}")
    if not (0 <= remain < 1 and 0 < mis < 1 and remain + 2 * mis <= 1):
        raise ValueError(
            f"need 0 <= remain < 1, 0 < mis < 1 and remain + 2*mis <= 1; got remain={remain}, mis={mis}"
        )
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")
    b = maps.shape[0]
    flat = maps.reshape(b, -1).clone()
    n = flat.shape[1]
    keep, m = int(n * remain), int(n * mis)
    if m == 0:
        return flat.view_as(maps)
    order = flat.argsort(dim=1, descending=True, stable=True)
    for i in range(b):
        high = order[i, keep : keep + m]
        low = order[i, n - m :]
        hv, lv = flat[i, high].clone(), flat[i, low].clone()
        flat[i, high] = lv[torch.randperm(m, generator=generator).to(lv.device)]
        flat[i, low] = hv[torch.randperm(m, generator=generator).to(hv.device)]
    return flat.view_as(maps)
