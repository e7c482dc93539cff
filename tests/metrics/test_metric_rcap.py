"""RCAP against the plain-loop oracle, and its bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from absgrad.metrics import IMAGENET, SYMMETRIC, rcap, rcap_percentiles
from support.metrics_oracle import rcap_loop


def _maps(batch: int, h: int, w: int, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, h, w, generator=g)


@pytest.mark.parametrize("normalization", [IMAGENET, SYMMETRIC])
def test_rcap_matches_loops(tiny_model, tiny_inputs, normalization):
    maps = _maps(2, 16, 16)
    target = [1, 3]
    res = rcap(tiny_model, tiny_inputs, target, maps, normalization=normalization)
    mean, std = normalization
    ref = rcap_loop(tiny_model, tiny_inputs, target, maps, mean, std)
    assert res.percentiles == (0.5, 0.6, 0.7, 0.8, 0.9)
    assert res.hit.shape == res.prob.shape == (2, 5)
    for i, (score, hits, probs, valid) in enumerate(ref):
        assert res.score[i].item() == pytest.approx(score, abs=1e-6)
        assert res.hit[i].tolist() == pytest.approx(hits, abs=1e-6)
        assert res.prob[i].tolist() == pytest.approx(probs, abs=1e-6)
        assert res.valid[i].tolist() == valid


def test_rcap_other_percentiles_match_loops(tiny_model, tiny_inputs):
    maps = _maps(2, 16, 16, seed=9)
    res = rcap(tiny_model, tiny_inputs, 2, maps, lower_bound=0.3, interval=0.2)
    ref = rcap_loop(tiny_model, tiny_inputs, [2, 2], maps, *IMAGENET, percents=(30, 50, 70, 90))
    assert res.percentiles == (0.3, 0.5, 0.7, 0.9)
    assert res.score.tolist() == pytest.approx([r[0] for r in ref], abs=1e-6)


def test_percentile_lists():
    assert rcap_percentiles() == (0.5, 0.6, 0.7, 0.8, 0.9)
    assert rcap_percentiles(0.0, 0.25) == (0.0, 0.25, 0.5, 0.75)
    assert rcap_percentiles(0.95, 0.1) == (0.95,)
    assert len(rcap_percentiles(0.5, 0.01)) == 50


def test_lower_bound_zero_recovers_everything(tiny_model, tiny_inputs):
    maps = _maps(2, 16, 16)
    res = rcap(tiny_model, tiny_inputs, [0, 1], maps, lower_bound=0.0, interval=0.5)
    with torch.no_grad():
        clean = torch.softmax(tiny_model(tiny_inputs), 1)[[0, 1], [0, 1]]
    assert res.hit[:, 0].tolist() == pytest.approx([1.0, 1.0])
    assert res.prob[:, 0].tolist() == pytest.approx(clean.tolist(), abs=1e-6)


def test_batch_size_does_not_change_result(tiny_model, tiny_inputs):
    maps = _maps(2, 16, 16)
    a = rcap(tiny_model, tiny_inputs, [0, 4], maps, batch_size=1)
    b = rcap(tiny_model, tiny_inputs, [0, 4], maps, batch_size=3)
    c = rcap(tiny_model, tiny_inputs, [0, 4], maps)
    assert torch.allclose(a.score, b.score, atol=1e-6) and torch.allclose(
        b.score, c.score, atol=1e-6
    )


def test_forward_passes_are_batched(tiny_model, tiny_inputs):
    sizes = []
    handle = tiny_model.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    rcap(tiny_model, tiny_inputs, [0, 1], _maps(2, 16, 16), batch_size=4)
    handle.remove()
    assert sizes == [4, 4, 2]  # 2 images x 5 percentiles in chunks of 4


def test_none_target_uses_top1(tiny_model, tiny_inputs):
    maps = _maps(2, 16, 16)
    with torch.no_grad():
        top1 = tiny_model(tiny_inputs).argmax(1).tolist()
    assert torch.equal(
        rcap(tiny_model, tiny_inputs, None, maps).score,
        rcap(tiny_model, tiny_inputs, top1, maps).score,
    )


def test_eval_mode_used_and_train_mode_restored(tiny_inputs):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Dropout(0.9), nn.Flatten(), nn.LazyLinear(3)
    )
    model(tiny_inputs)  # materialise the lazy layer
    model.train()
    maps = _maps(2, 16, 16)
    res = rcap(model, tiny_inputs, [0, 1], maps)
    assert model.training and all(m.training for m in model.modules())
    ref = rcap_loop(model, tiny_inputs, [0, 1], maps, *IMAGENET)  # loops run in eval mode
    assert res.score.tolist() == pytest.approx([r[0] for r in ref], abs=1e-6)
    model.train()


def test_rcap_accepts_b1hw_maps_and_tensor_targets(tiny_model, tiny_inputs):
    maps = _maps(2, 16, 16)
    a = rcap(tiny_model, tiny_inputs, torch.tensor([1, 2]), maps[:, None])
    b = rcap(tiny_model, tiny_inputs, [1, 2], maps)
    assert torch.equal(a.score, b.score)
    assert a.mean() == pytest.approx(float(b.score.mean()))
