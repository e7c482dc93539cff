"""Behaviour on a hand-built model whose decision depends only on a known square."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from absgrad.methods import reverse
from absgrad.metrics import IMAGENET, METRICS, deletion_insertion, rcap
from support.metrics_oracle import reverse_map

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
    model = SquareModel(6, 12)
    x, _ = _scene(6, 12)
    smooth = _blob(6, 12)
    rev = reverse(smooth, remain=0.07, mis=0.10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rev.flatten(1).sort(1).values, smooth.flatten(1).sort(1).values)
    assert not torch.equal(rev, smooth)
    assert (rcap(model, x, 0, rev).score < rcap(model, x, 0, smooth).score - 0.05).all()


@pytest.mark.parametrize("name", list(METRICS))
def test_each_declared_direction_prefers_the_map_of_the_evidence(name):
    """Every metric, called through its declaration, scores the map on the model's evidence
    better than the map on everything else, in the direction the declaration states."""
    d = METRICS[name]
    model = SquareModel(0, 12)  # the evidence: the top-left quarter
    x, mask = _scene(0, 12)
    elsewhere = mask.flip(1, 2)  # the bottom-right quarter
    g = torch.Generator().manual_seed(3)
    good = 0.9 * mask + 0.1 * torch.rand(mask.shape, generator=g)  # ties broken, in [0, 1]
    bad = 0.9 * elsewhere + 0.1 * torch.rand(mask.shape, generator=g)

    def per_image(maps: torch.Tensor) -> torch.Tensor:
        res = d.function(maps, mask) if d.needs_mask else d.function(model, x, 0, maps)
        return d.per_image(res)

    s_good, s_bad = per_image(good), per_image(bad)
    assert s_good.shape == s_bad.shape == (3,)
    assert ((s_good > s_bad) if d.higher_is_better else (s_good < s_bad)).all(), (s_good, s_bad)
