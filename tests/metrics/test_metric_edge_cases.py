"""Degenerate maps and shapes: constant, mostly zero, single pixel, batch of 1, odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from absgrad.metrics import IMAGENET, blurred, deletion_insertion, rcap, target_probs
from support.metrics_oracle import curves_loop, rcap_loop


def test_constant_map(tiny_model, tiny_inputs):
    maps = torch.ones(2, 16, 16)
    res = rcap(tiny_model, tiny_inputs, [0, 1], maps)
    assert res.score.tolist() == [0.0, 0.0]  # every percentile selects nothing: all left out
    assert not res.valid.any()
    assert torch.isfinite(res.hit).all() and torch.isfinite(res.prob).all()
    assert rcap(tiny_model, tiny_inputs, [0, 1], torch.zeros(2, 16, 16)).score.tolist() == [0, 0]
    x = torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    curves = deletion_insertion(tiny_model, x, [0, 1], torch.full((2, 20, 20), 0.3))
    clean = target_probs(tiny_model, x, [0, 1])
    blur = target_probs(tiny_model, blurred(x), [0, 1])
    assert torch.allclose(curves.deletion, clean[:, None].expand(2, 10), atol=1e-6)
    assert torch.allclose(curves.insertion, blur[:, None].expand(2, 10), atol=1e-6)


def test_flat_top_map_leaves_out_only_tied_percentiles(tiny_model, tiny_inputs):
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 16, 16, generator=g) * 0.5
    maps[:, :4, :] = 1.0  # 25% of the pixels share the maximum
    res = rcap(tiny_model, tiny_inputs, [0, 1], maps)
    assert res.valid.tolist() == [[True, True, True, False, False]] * 2
    ref = rcap_loop(tiny_model, tiny_inputs, [0, 1], maps, *IMAGENET)
    assert res.score.tolist() == pytest.approx([r[0] for r in ref], abs=1e-6)


def test_ninety_percent_zeros_map(tiny_model, tiny_inputs):
    g = torch.Generator().manual_seed(1)
    maps = torch.zeros(2, 16, 16)
    idx = torch.randperm(256, generator=g)[:26]
    maps.view(2, -1)[:, idx] = torch.rand(2, 26, generator=g) + 0.1
    res = rcap(tiny_model, tiny_inputs, [2, 3], maps)
    ref = rcap_loop(tiny_model, tiny_inputs, [2, 3], maps, *IMAGENET)
    assert res.score.tolist() == pytest.approx([r[0] for r in ref], abs=1e-6)
    assert torch.allclose(res.hit, torch.ones(2, 5))  # all mass is in the nonzero 10%
    x = torch.randn(2, 3, 20, 20, generator=g)
    m20 = torch.zeros(2, 20, 20)
    m20[:, 3:7, 5:15] = torch.rand(2, 4, 10, generator=g)
    curves = deletion_insertion(tiny_model, x, [2, 3], m20)
    dels, inss = curves_loop(tiny_model, x, [2, 3], m20)
    assert curves.deletion.flatten().tolist() == pytest.approx(dels[0] + dels[1], abs=1e-6)
    assert curves.insertion.flatten().tolist() == pytest.approx(inss[0] + inss[1], abs=1e-6)


def test_single_pixel_map_and_batch_of_one(tiny_model, tiny_inputs):
    maps = torch.zeros(1, 16, 16)
    maps[0, 7, 9] = 1.0
    res = rcap(tiny_model, tiny_inputs[:1], 4, maps)
    ref = rcap_loop(tiny_model, tiny_inputs[:1], [4], maps, *IMAGENET)
    assert res.score.shape == (1,)
    assert res.score.item() == pytest.approx(ref[0][0], abs=1e-6)
    assert res.hit.tolist() == [[1.0] * 5]
    x = torch.randn(1, 3, 18, 18, generator=torch.Generator().manual_seed(3))
    m = torch.zeros(1, 18, 18)
    m[0, 2, 3] = 0.7
    curves = deletion_insertion(tiny_model, x, 4, m)
    dels, inss = curves_loop(tiny_model, x, [4], m)
    assert curves.deletion[0].tolist() == pytest.approx(dels[0], abs=1e-6)
    assert curves.insertion[0].tolist() == pytest.approx(inss[0], abs=1e-6)


def test_odd_image_size(tiny_model):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 3, 225, 193, generator=g)
    maps = torch.rand(1, 225, 193, generator=g)
    res = rcap(tiny_model, x, 1, maps)
    # hit with numpy, independently: mass strictly above the sorted value at floor(N*p) - 1
    flat = maps.numpy().ravel().astype(np.float64)
    srt = np.sort(flat)
    n = flat.size
    for j, pc in enumerate((50, 60, 70, 80, 90)):
        q = srt[n * pc // 100 - 1]
        assert res.hit[0, j].item() == pytest.approx(flat[flat > q].sum() / flat.sum(), abs=1e-5)
        assert int((flat > q).sum()) == n - n * pc // 100
    curves = deletion_insertion(tiny_model, x, 1, maps, steps=5)
    assert curves.deletion.shape == (1, 5)
    assert torch.isfinite(curves.deletion).all() and torch.isfinite(curves.insertion).all()
    assert np.isfinite(curves.dauc) and np.isfinite(curves.iauc)


def test_gb_like_map_never_nan(tiny_model, tiny_inputs):
    maps = torch.zeros(2, 16, 16)
    maps[0, 0, 0] = 1e-30  # a denormal-ish mass
    res = rcap(tiny_model, tiny_inputs, [0, 1], maps)
    assert torch.isfinite(res.score).all()
    assert res.score[1].item() == 0.0
