"""Reversed maps (the paper's Proposition 1 check, superscript R)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from absgrad.errors import AbsgradError
from absgrad.methods.randomness import GeneratorArg, SeedsArg, image_generators


def reversal_counts(n: int, remain: float, mis: float) -> tuple[int, int]:
    """``(kept, swapped)`` for a map of ``n`` values: the top ``floor(n * remain) + 1`` values stay
    (the maximum always stays, as in the reference), ``floor(n * mis)`` values swap on each side."""
    return math.floor(n * remain) + 1, math.floor(n * mis)


def reverse(
    maps: Tensor,
    *,
    remain: float,
    mis: float,
    generator: GeneratorArg = None,
    seeds: SeedsArg = None,
) -> Tensor:
    """Swap a map's high values with its lowest ones, keeping the very top.

    Per image of ``maps (B, H, W)`` with ``n = H * W`` values: sort the values; keep the top
    ``floor(n * remain) + 1``; the next ``floor(n * mis)`` (high values) and the bottom
    ``floor(n * mis)`` change places, each side shuffled. Equal values rank by pixel index (the
    earlier pixel higher), and the shuffles permute each side's pixels in image order: the result
    depends on which pixels swap, not on the order of the values inside a side (which float
    rounding of nearly equal values can change). ``generator`` (one, or one per image) or
    ``seeds`` (one per image) drive the shuffles; per-image ones make each map independent of
    the batch. Returns a new ``(B, H, W)`` tensor with the same multiset of values per image.
    """
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise AbsgradError(
            f"maps must be a (B, H, W) tensor, got {getattr(maps, 'shape', type(maps))}"
        )
    if not (0 <= remain < 1 and 0 < mis < 1 and remain + 2 * mis <= 1):
        raise AbsgradError(
            f"need 0 <= remain < 1, 0 < mis < 1 and remain + 2*mis <= 1; got remain={remain}, mis={mis}"
        )
    if not torch.isfinite(maps).all():
        raise AbsgradError("maps contain NaN or infinite values")
    b = maps.shape[0]
    gens = image_generators(b, generator, seeds) or [None] * b
    flat = maps.reshape(b, -1).clone()
    n = flat.shape[1]
    keep, m = reversal_counts(n, remain, mis)
    if m == 0:
        return flat.view_as(maps)
    if keep + 2 * m > n:
        raise AbsgradError(
            f"remain={remain}, mis={mis} on {n} values: the kept top ({keep}) and the two swapped "
            f"sides ({m} each) overlap; lower remain or mis"
        )
    # which pixels are kept or swapped: ranks by value, equal values by pixel index (a stable
    # sort ranks the earlier pixel higher, on any device)
    order = flat.argsort(dim=1, descending=True, stable=True)
    for i in range(b):
        # each side in pixel order, so the shuffle depends on which pixels swap, not on their
        # ranks inside the side, which float rounding of nearly equal values can reorder
        high = order[i, keep : keep + m].sort().values
        low = order[i, n - m :].sort().values
        hv, lv = flat[i, high].clone(), flat[i, low].clone()
        flat[i, high] = lv[torch.randperm(m, generator=gens[i]).to(lv.device)]
        flat[i, low] = hv[torch.randperm(m, generator=gens[i]).to(hv.device)]
    return flat.view_as(maps)
