"""Equal values in the orderings. Every selection of the metrics (RCAP, deletion/insertion, the
pointing game's top region) and Guided IG's choice of features is a threshold on values, so
equal values are all in or all out: nothing depends on how a sort orders ties, which differs
between devices and between sort algorithms. The same selection whatever the batch, and
pixels moved around carry their selection with them. (The reversal, the one place that ranks
single pixels, breaks ties by pixel index: tests/methods/test_api.py.)"""

from __future__ import annotations

import math

import numpy as np
import torch

from absgrad.methods.samplers import _smallest_fraction
from absgrad.metrics.grid import curve_positions, fraction_positions, rcap_percentiles
from absgrad.metrics.thresholds import above, thresholds

H = W = 12


def _tied_maps(n: int = 16, levels: int = 6) -> torch.Tensor:
    """Maps with many exact ties: values on a grid of ``levels`` levels."""
    g = torch.Generator().manual_seed(4)
    return (torch.rand(n, H, W, generator=g) * levels).floor() / levels


def _positions() -> list[int]:
    n = H * W
    return fraction_positions(n, rcap_percentiles()) + curve_positions(n, 10)


def test_metric_selections_are_value_thresholds_whatever_the_batch():
    maps, pos = _tied_maps(), _positions()
    whole = above(maps, thresholds(maps, pos))
    for i in range(maps.shape[0]):
        alone = above(maps[i : i + 1], thresholds(maps[i : i + 1], pos))[0]
        assert torch.equal(alone, whole[i])
        values = maps[i].numpy()
        ordered = np.sort(values.ravel())
        for k, p in enumerate(pos):  # strictly above the value at the sorted position
            thr = ordered[p] if p >= 0 else -math.inf
            assert np.array_equal(whole[i, k].numpy(), values > thr)


def test_moved_pixels_keep_their_selection():
    # a sort orders ties by position (or not at all): were that used, moving pixels would
    # change which of the tied pixels are selected
    maps, pos = _tied_maps(), _positions()
    perm = torch.randperm(H * W, generator=torch.Generator().manual_seed(5))
    moved = maps.flatten(1)[:, perm].view_as(maps)
    sel = above(maps, thresholds(maps, pos)).flatten(2)
    sel_moved = above(moved, thresholds(moved, pos)).flatten(2)
    assert torch.equal(sel_moved, sel[:, :, perm])


def test_guided_ig_selection_is_the_references_lower_quantile_with_ties():
    g = torch.Generator().manual_seed(6)
    work = ((torch.randn(16, 3, 8, 8, generator=g) * 4).round() / 4).double()  # many ties
    work[0].view(-1)[:40] = math.inf  # features already at the band's edge
    fraction = 0.25
    kth = math.floor(fraction * (work[0].numel() - 1)) + 1
    whole = _smallest_fraction(work, kth)
    perm = torch.randperm(work[0].numel(), generator=g)
    for i in range(work.shape[0]):
        w = work[i].numpy()
        thr = np.quantile(np.abs(w), fraction, method="lower")  # the reference's rule
        expected = (np.abs(w) <= thr) & np.isfinite(w)
        assert np.array_equal(whole[i].numpy(), expected)
        assert torch.equal(_smallest_fraction(work[i : i + 1], kth)[0], whole[i])
        moved = work[i].flatten()[perm].view_as(work[i])[None]
        assert torch.equal(_smallest_fraction(moved, kth)[0].flatten(), whole[i].flatten()[perm])
        assert expected.sum() >= kth  # ties at the threshold are all selected
