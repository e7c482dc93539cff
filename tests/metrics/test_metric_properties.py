"""Property tests: tie-heavy maps (small integers) against the loop oracle, never NaN."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from absgrad.metrics import IMAGENET, deletion_insertion, rcap
from support.metrics_oracle import curves_loop, rcap_loop

torch.manual_seed(0)
MODEL = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(2),
    nn.Flatten(),
    nn.Linear(16, 3),
).eval()
X = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))

maps_strategy = st.lists(st.integers(0, 3), min_size=64, max_size=64).map(
    lambda v: torch.tensor(v, dtype=torch.float32).reshape(1, 8, 8)
)


@settings(max_examples=15, deadline=None)
@given(maps=maps_strategy, target=st.integers(0, 2))
def test_rcap_on_tied_maps(maps, target):
    res = rcap(MODEL, X, target, maps)
    ((score, hits, probs, valid),) = rcap_loop(MODEL, X, [target], maps, *IMAGENET)
    assert torch.isfinite(res.score).all()
    assert 0.0 <= res.score.item() <= 1.0
    assert abs(res.score.item() - score) < 1e-6
    assert res.valid[0].tolist() == valid
    assert max(abs(a - b) for a, b in zip(res.hit[0].tolist(), hits, strict=True)) < 1e-6


@settings(max_examples=6, deadline=None)
@given(maps=maps_strategy, steps=st.integers(1, 6))
def test_curves_on_tied_maps(maps, steps):
    # torchvision's blur (the oracle's) needs images larger than half the kernel: compare at
    # 17 x 17 (nearest upsampling keeps the ties); at 8 x 8 check shapes and finiteness only.
    res = deletion_insertion(MODEL, X, 1, maps, steps=steps)
    big = torch.nn.functional.interpolate(X, size=(17, 17))
    big_maps = torch.nn.functional.interpolate(maps[:, None], size=(17, 17))[:, 0]
    res17 = deletion_insertion(MODEL, big, 1, big_maps, steps=steps)
    dels, inss = curves_loop(MODEL, big, [1], big_maps, steps=steps)
    assert max(abs(a - b) for a, b in zip(res17.deletion[0].tolist(), dels[0], strict=True)) < 1e-6
    assert max(abs(a - b) for a, b in zip(res17.insertion[0].tolist(), inss[0], strict=True)) < 1e-6
    assert torch.isfinite(res.deletion).all() and torch.isfinite(res.insertion).all()
    assert res.deletion.shape == (1, steps)
