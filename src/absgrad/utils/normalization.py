"""Input normalisations ``(mean, std)``: the common constants and their check.

A model input is ``(pixel - mean) / std`` per channel, with pixels in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Normalization = tuple[Sequence[float], Sequence[float]]

#: ImageNet mean / std per RGB channel (torchvision and most timm models).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IMAGENET: Normalization = (IMAGENET_MEAN, IMAGENET_STD)
#: mean = std = 0.5: inputs in [-1, 1] (e.g. the EfficientNet-Lite0 demo model).
SYMMETRIC: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def check_normalization(normalization: object, channels: int) -> tuple[Tensor, Tensor]:
    """Validate ``(mean, std)`` for ``channels`` channels; return them as float64 ``(C, 1, 1)``."""
    try:
        mean, std = normalization  # type: ignore[misc]
        mean_t = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise TypeError(
            "normalization must be a pair (mean, std) of per-channel sequences, "
            f"got {normalization!r}"
        ) from err
    for name, t in (("mean", mean_t), ("std", std_t)):
        if t.numel() not in (1, channels):
            raise ValueError(
                f"normalization {name} has {t.numel()} values but the inputs have {channels} channels"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"normalization {name} must be finite, got {t.tolist()}")
    if (std_t <= 0).any():
        raise ValueError(f"normalization std must be > 0, got {std_t.tolist()}")
    return mean_t.expand(channels).reshape(-1, 1, 1), std_t.expand(channels).reshape(-1, 1, 1)
