"""Guided backprop beyond ReLU: GELU, SiLU and friends get the guided rule (``hook(f'(x) g)``),
checked against module backward hooks written here; gates keep their plain gradient."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import absgrad
from absgrad.methods.guided_backprop import HOOKS

timm = pytest.importorskip("timm")


class SmoothNet(nn.Module):
    """conv-GELU-conv-SiLU (x sigmoid gate)-pool-linear: no ReLU anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.a1 = nn.Conv2d(3, 8, 3, padding=1), nn.GELU()
        self.c2, self.a2 = nn.Conv2d(8, 8, 3, padding=1), nn.SiLU()
        self.gate = nn.Sigmoid()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.a2(self.c2(self.a1(self.c1(x))))
        h = h * self.gate(h.mean((2, 3), keepdim=True))
        return self.fc(h.mean((2, 3)))


def reference_gb(model: nn.Module, x, target, hook: str, kinds=(nn.GELU, nn.SiLU)):
    """Input gradient with every activation of ``kinds`` passing back ``hook(f'(x) g)``."""
    fn = HOOKS[hook]
    handles = [
        m.register_full_backward_hook(lambda _m, gin, _gout: (fn(gin[0]),))
        for m in model.modules()
        if isinstance(m, kinds)
    ]
    try:
        xg = x.clone().requires_grad_(True)
        model(xg).gather(1, target[:, None]).sum().backward()
    finally:
        for h in handles:
            h.remove()
    return xg.grad


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 16, 16, generator=g), torch.tensor([0, 4])


@pytest.mark.parametrize("hook", ["positive", "negative", "abs"])
def test_gelu_silu_guided_rule_matches_backward_hooks(batch, hook):
    torch.manual_seed(0)
    model = SmoothNet().eval()
    x, t = batch
    ours = absgrad.attribute(model, x, t, "gb", hook=hook)
    theirs = reference_gb(model, x, t, hook)
    assert theirs.abs().max() > 0
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    # and the rule took effect: not the plain gradient
    plain = absgrad.attribute(model, x, t, "vg")
    assert (ours - plain).abs().max() > 0.1 * plain.abs().max()


def test_both_hook_is_the_plain_gradient_on_gelu(batch):
    torch.manual_seed(0)
    model = SmoothNet().eval()
    x, t = batch
    torch.testing.assert_close(
        absgrad.attribute(model, x, t, "gb", hook="both"), absgrad.attribute(model, x, t, "vg")
    )


def test_vit_guided_backprop_guides_every_gelu():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = timm.create_model(
            "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
            num_classes=5,
        ).eval()  # fmt: skip
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1, 2])
    ours = absgrad.attribute(model, x, t, "gb")
    torch.testing.assert_close(ours, reference_gb(model, x, t, "positive"), atol=1e-6, rtol=1e-5)
    assert not any("forward" in m.__dict__ for m in model.modules())  # restored


def test_inplace_silu_is_guided_without_corrupting_the_forward(batch):
    torch.manual_seed(0)
    model = SmoothNet().eval()
    x, t = batch
    expected = reference_gb(model, x, t, "positive")
    model.a2 = nn.SiLU(inplace=True)
    torch.testing.assert_close(absgrad.attribute(model, x, t, "gb"), expected, atol=1e-6, rtol=1e-5)


def test_model_with_only_gates_is_refused(batch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten(), nn.LazyLinear(3))
    x, _ = batch
    model(x)
    with pytest.raises(ValueError, match=r"nn\.GELU.*has none"):
        absgrad.explain(model, x, 0, "gb")
