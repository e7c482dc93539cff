"""Behaviour on a hand-built model whose decision depends only on a known square."""

from __future__ import annotations

import pytest
import torch
from metrics_oracle import reverse_map
from torch import nn

from absgrad.metrics import IMAGENET, deletion_insertion, rcap

SIZE = 24


class SquareModel(nn.Module):
    """Class 0 logit = 2 * (mean normalised input inside the square) - 1; class 1 logit = 0."""

    def __init__(self, top: int, size: int) -> None:
        super().__init__()
        self.top, self.size = top, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = slice(self.top, self.top + self.size)
        region = x[:, :, s, s].mean(dim=(1, 2, 3))
        return torch.stack([2 * region - 1, torch.zeros_like(region)], dim=1)


def _scene(top: int, size: int, batch: int = 3, seed: int = 0):
    """Pixel images in [0, 1]: random background, white square; normalised; and the mask."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(batch, 3, SIZE, SIZE, generator=g)
    mask = torch.zeros(batch, SIZE, SIZE)
    mask[:, top : top + size, top : top + size] = 1.0
    pixels = torch.where(mask[:, None] > 0, torch.ones_like(pixels), pixels)
    mean = torch.tensor(IMAGENET[0]).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1]).reshape(1, 3, 1, 1)
    return (pixels - mean) / std, mask


def test_mask_beats_random_map_on_rcap_dauc_iauc():
    model = SquareModel(9, 6)
    x, mask = _scene(9, 6)
    g = torch.Generator().manual_seed(1)
    random_map = torch.rand(mask.shape, generator=g)
    r_mask, r_rand = rcap(model, x, 0, mask), rcap(model, x, 0, random_map)
    a_mask = deletion_insertion(model, x, 0, mask)
    a_rand = deletion_insertion(model, x, 0, random_map)
    assert (r_mask.score > r_rand.score + 0.2).all()
    assert a_mask.iauc > a_rand.iauc + 0.05
    assert a_mask.dauc < a_rand.dauc - 0.05


def test_noise_around_the_object_lowers_hit():
    model = SquareModel(9, 6)
    x, mask = _scene(9, 6)
    g = torch.Generator().manual_seed(2)
    noisy = torch.where(mask > 0, mask, 0.3 * torch.rand(mask.shape, generator=g))
    clean_res, noisy_res = rcap(model, x, 0, mask), rcap(model, x, 0, noisy)
    assert torch.allclose(clean_res.hit, torch.ones(3, 5))
    assert (noisy_res.hit < clean_res.hit).all()
    assert (noisy_res.score < clean_res.score).all()


def _blob(top: int, size: int, batch: int = 3) -> torch.Tensor:
    centre = top + (size - 1) / 2
    rows = torch.arange(SIZE, dtype=torch.float32)
    d2 = (rows[:, None] - centre) ** 2 + (rows[None, :] - centre + 0.3) ** 2
    return torch.exp(-d2 / (2 * 5.0**2)).expand(batch, SIZE, SIZE).clone()


def test_reversed_map_scores_worse_on_rcap():
    model = SquareModel(6, 12)  # the evidence covers 25% of the image
    x, _ = _scene(6, 12)
    smooth = _blob(6, 12)
    reversed_ = torch.stack([reverse_map(m, 0.07, 0.10, seed=i) for i, m in enumerate(smooth)])
    original, rev = rcap(model, x, 0, smooth), rcap(model, x, 0, reversed_)
    assert torch.allclose(original.hit, rev.hit)  # same values, moved: only prob can differ
    assert (rev.score < original.score - 0.05).all()


def test_reversed_map_with_the_library_reversal():
    absgrad_methods = pytest.importorskip("absgrad.methods")
    model = SquareModel(6, 12)
    x, _ = _scene(6, 12)
    smooth = _blob(6, 12)
    rev = absgrad_methods.reverse(smooth, remain=0.07, mis=0.10)
    assert (rcap(model, x, 0, rev).score < rcap(model, x, 0, smooth).score).all()
