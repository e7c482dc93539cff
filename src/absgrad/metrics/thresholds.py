"""Top-fraction selections of saliency maps: sorted positions, per-image thresholds, masks.

Shared by RCAP, the deletion/insertion curves and the pointing game. Nothing loops over pixels:
each map is sorted once and thresholded at many fractions in one tensor op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def sorted_values(maps: Tensor) -> Tensor:
    """Each map's values in ascending order, ``(B, H*W)`` (sort once, threshold many times)."""
    return maps.reshape(maps.shape[0], -1).sort(dim=1).values


def thresholds(maps: Tensor, positions: Sequence[int], *, ordered: Tensor | None = None) -> Tensor:
    """Per-image thresholds ``(B, P)``: the values at ascending sorted ``positions`` of each map.

    ``maps``: ``(B, H, W)``; ``ordered``: their :func:`sorted_values` if already computed. A
    position of -1 gives ``-inf`` (every pixel lies above it).
    """
    if ordered is None:
        ordered = sorted_values(maps)
    pos = torch.tensor(list(positions), dtype=torch.long, device=maps.device)
    thr = ordered[:, pos.clamp(min=0)]
    return torch.where(pos >= 0, thr, torch.full_like(thr, -math.inf))


def above(maps: Tensor, thr: Tensor) -> Tensor:
    """Boolean masks ``(B, P, H, W)``: pixels of ``maps (B, H, W)`` strictly above ``thr (B, P)``."""
    return maps[:, None] > thr[:, :, None, None]
