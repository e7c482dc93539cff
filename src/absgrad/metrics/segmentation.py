"""Metrics against a binary ground-truth mask: Log-Cosh Dice, MAE, pointing game."""

from __future__ import annotations

import torch
from torch import Tensor

from absgrad.metrics.grid import fraction_positions
from absgrad.metrics.thresholds import thresholds
from absgrad.utils.validation import InputError, InputTypeError


def _check_pair(maps: object, masks: object, *, unit_maps: bool = True) -> tuple[Tensor, Tensor]:
    """Validate maps ``(B, H, W)`` (or ``(B, 1, H, W)``) and binary masks of the same shape.

    Returns float maps and float 0/1 masks, both ``(B, H, W)``.
    """
    if not isinstance(maps, Tensor):
        raise InputTypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    if not isinstance(masks, Tensor):
        raise InputTypeError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if maps.dim() != 3:
        raise InputError(f"maps must have shape (B, H, W), got shape {tuple(maps.shape)}")
    if maps.shape[0] == 0:
        raise InputError("maps is an empty batch (B = 0)")
    if masks.shape != maps.shape:
        raise InputError(
            f"masks shape {tuple(masks.shape)} does not match maps shape {tuple(maps.shape)}"
        )
    maps = maps.float() if not maps.is_floating_point() else maps
    if not torch.isfinite(maps).all():
        raise InputError("maps contains NaN or infinite values")
    if unit_maps and ((maps < 0).any() or (maps > 1).any()):
        raise InputError(
            "maps must lie in [0, 1] for this metric (min-max scale them first, e.g. "
            "absgrad.utils.maps.minmax)"
        )
    if masks.dtype != torch.bool:
        if masks.is_complex() or not ((masks == 0) | (masks == 1)).all():
            raise InputError("masks must be binary: bool, or numbers that are all 0 or 1")
    return maps, masks.to(device=maps.device, dtype=maps.dtype)


def lc_dice(maps: Tensor, masks: Tensor) -> Tensor:
    """Log-Cosh Dice loss ``(B,)`` (Jadon 2020), lower is better.

    ``d = (2 sum(M S) + 1) / (sum S + sum M + 1)``, loss ``log(cosh(1 - d))``.
    ``maps (B, H, W)`` in [0, 1], ``masks (B, H, W)`` binary.
    """
    m, s = _check_pair(maps, masks)
    inter = (m * s).sum(dim=(1, 2))
    dice = (2 * inter + 1) / (s.sum(dim=(1, 2)) + m.sum(dim=(1, 2)) + 1)
    return torch.log(torch.cosh(1 - dice))


def mae(maps: Tensor, masks: Tensor) -> Tensor:
    """Mean absolute error ``(B,)``: ``mean |M - S|`` over pixels, lower is better."""
    m, s = _check_pair(maps, masks)
    return (m - s).abs().mean(dim=(1, 2))


def mae_sqrt_paper(maps: Tensor, masks: Tensor) -> Tensor:
    """The figure the paper prints as "MAE": ``sqrt(mean |M - S|)`` ``(B,)``.

    Its reference code takes a square root; use it only to compare with the paper's tables.
    """
    return mae(maps, masks).sqrt()


def check_top(top: float) -> None:
    """Refuse a pointing-game ``top`` that is not a fraction in (0, 1]."""
    if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0 < top <= 1:
        raise InputError(f"top must be a fraction in (0, 1], got {top!r}")


def pointing_game(maps: Tensor, masks: Tensor, *, top: float = 0.3) -> Tensor:
    """Pointing game hit ``(B,)`` as float 0/1: the centroid of the map's top ``top`` fraction
    falls inside the mask.

    The top region is the pixels strictly above the value at sorted position
    ``floor(H*W*(1-top)) - 1`` (RCAP's threshold rule); if ties leave it empty, the pixels equal to
    the maximum are used. The centroid is the unweighted mean (row, col) of the region, each
    rounded half up to a pixel. Maps need not be in [0, 1]; only their ranking matters.
    """
    check_top(top)
    m, s = _check_pair(maps, masks, unit_maps=False)
    b, h, w = m.shape
    pos = fraction_positions(h * w, [round(1 - top, 10)])
    region = m > thresholds(m, pos)[:, :, None]  # (B, H, W)
    empty = ~region.flatten(1).any(dim=1)
    top_val = m.flatten(1).max(dim=1).values
    region = torch.where(empty[:, None, None], m == top_val[:, None, None], region)
    weight = region.cpu().to(torch.float64)  # the centroid in float64, on the CPU (MPS has none)
    count = weight.sum(dim=(1, 2))
    rows = torch.arange(h, dtype=torch.float64)
    cols = torch.arange(w, dtype=torch.float64)
    r = torch.floor((weight.sum(dim=2) * rows).sum(dim=1) / count + 0.5).long()
    c = torch.floor((weight.sum(dim=1) * cols).sum(dim=1) / count + 0.5).long()
    hit = s.cpu()[torch.arange(b), r, c]
    return hit.float().to(m.device)


__all__ = ["lc_dice", "mae", "mae_sqrt_paper", "pointing_game"]
