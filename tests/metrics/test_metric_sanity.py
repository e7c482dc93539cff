"""Model-parameter randomisation sanity check."""

from __future__ import annotations

import pytest
import scipy.stats
import torch

from absgrad.metrics import sanity_check, spearman
from absgrad.metrics.sanity import default_layers


def vanilla_gradient(model, x, target):
    x = x.clone().requires_grad_(True)
    out = model(x)
    out[torch.arange(x.shape[0]), torch.as_tensor(target)].sum().backward()
    s = x.grad.abs().sum(1)
    lo = s.flatten(1).min(1).values[:, None, None]
    hi = s.flatten(1).max(1).values[:, None, None]
    return (s - lo) / (hi - lo)


def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 6, 7), generator=g).float()
    b = torch.rand(3, 6, 7, generator=g)
    b[0, :2] = 0.5
    ours = spearman(a, b)
    for i in range(3):
        rho = scipy.stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert ours[i].item() == pytest.approx(rho, abs=1e-6)
    assert spearman(torch.ones(1, 4, 4), b[:1, :4, :4]).tolist() == [0.0]  # no ranking: 0


def test_default_layers_are_top_down(tiny_model):
    assert default_layers(tiny_model) == ["fc", "features.2", "features.0"]


def test_sanity_check_restores_weights_and_reports(tiny_model, tiny_inputs):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.train()
    res = sanity_check(tiny_model, tiny_inputs, [0, 1], vanilla_gradient)
    assert tiny_model.training
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])
    assert res.layers == ("fc", "features.2", "features.0")
    assert res.correlation.shape == (3, 2)
    assert torch.isfinite(res.correlation).all()
    assert (res.correlation[-1] < 0.9).all()  # fully random network: a different map
    # the first step matches a manual re-run: same original map
    assert torch.allclose(res.original, vanilla_gradient(tiny_model.eval(), tiny_inputs, [0, 1]))
    assert set(res.mean()) == set(res.layers)


def test_model_independent_explainer_stays_correlated(tiny_model, tiny_inputs):
    g = torch.Generator().manual_seed(4)
    fixed = torch.rand(2, 16, 16, generator=g)
    res = sanity_check(tiny_model, tiny_inputs, [0, 1], lambda m, x, t: fixed, layers=["fc"])
    assert res.correlation[0].tolist() == pytest.approx([1.0, 1.0])


def test_weights_restored_when_explainer_fails(tiny_model, tiny_inputs):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    calls = []

    def flaky(model, x, target):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return vanilla_gradient(model, x, target)

    with pytest.raises(RuntimeError, match="boom"):
        sanity_check(tiny_model, tiny_inputs, [0, 1], flaky)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])


def test_sanity_check_bad_input(tiny_model, tiny_inputs):
    with pytest.raises(ValueError, match="not found"):
        sanity_check(tiny_model, tiny_inputs, 0, vanilla_gradient, layers=["nope"])
    with pytest.raises(TypeError, match="explain_fn"):
        sanity_check(tiny_model, tiny_inputs, 0, "gag")
    with pytest.raises(ValueError, match="explain_fn output"):
        sanity_check(tiny_model, tiny_inputs, 0, lambda m, x, t: torch.rand(2, 8, 8))
