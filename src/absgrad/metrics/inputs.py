"""Checks of what the metric functions receive: images with their maps, precomputed probabilities."""

from __future__ import annotations

import torch
from torch import Tensor

from absgrad.utils.validation import check_images, check_maps


def prepare(
    inputs: object, maps: object, *, name: str = "maps", nonnegative: bool = False
) -> tuple[Tensor, Tensor]:
    """Validate inputs ``(B, C, H, W)`` and maps ``(B, H, W)`` (or ``(B, 1, H, W)``).

    Returns the inputs and float ``(B, H, W)`` maps on the inputs' device.
    """
    x = check_images(inputs)
    m = check_maps(maps, x.shape[0], (x.shape[2], x.shape[3]), name=name)
    if nonnegative and (m < 0).any():
        raise ValueError(
            f"{name} has negative values; this metric treats the map as a mass "
            "(take |A| or min-max scale it first, e.g. absgrad.utils.maps.to_map)"
        )
    return x, m.to(device=x.device)


def check_probs(probs: object, batch: int, name: str, device: torch.device) -> Tensor:
    """Validate precomputed target probabilities ``(B,)`` in [0, 1]; float32 on ``device``."""
    if not isinstance(probs, Tensor):
        probs = torch.as_tensor(probs)
    if probs.dim() != 1 or probs.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(probs.shape)}")
    probs = probs.to(device=device, dtype=torch.float32)
    if not torch.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return probs
