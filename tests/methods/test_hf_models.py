"""Hugging Face image classifiers (ViT, DeiT, BEiT, Swin, ConvNeXt, ResNet from transformers):
their logits, the Grad-CAM layer by the same rule as timm's with pytorch-grad-cam and its
reshape transforms as the reference, and guided backprop through their activation modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import absgrad
from absgrad.methods.guided_backprop import guided_backprop_support, unreachable_activations
from absgrad.methods.layers import default_layer
from absgrad.models.logits import logits_model
from support.hub import tiny_model

transformers = pytest.importorskip("transformers")
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
T = torch.tensor([0, 2])

#: family -> (the default layer inside the base model, pytorch-grad-cam's reshape transform)
LAYERS = {
    "vit": ("vit.layers.1.layernorm_before", ("tokens", 1, 4, 4)),  # class token dropped
    "deit": ("deit.layers.1.layernorm_before", ("tokens", 2, 4, 4)),  # + distillation token
    "beit": ("beit.layers.1.layernorm_before", ("tokens", 1, 4, 4)),
    "swin": ("swin.encoder.layers.1", ("tokens", 0, 4, 4)),  # the last stage, as timm's Swin
    "convnext": ("convnext.encoder.stages.1", None),  # the last stage, as timm's ConvNeXt
    "resnet": ("resnet.encoder.stages.1", None),  # layer4 of timm's / torchvision's ResNet
}


def _model(kind: str) -> nn.Module:
    return logits_model(tiny_model(kind))  # (B, K) logits, module names kept


def _reshape(spec):
    if spec is None:
        return None
    _, prefix, h, w = spec

    def tokens_to_grid(t):  # written here for pytorch-grad-cam: drop prefix tokens, -> NCHW
        b, _, c = t.shape
        return t[:, prefix:, :].reshape(b, h, w, c).permute(0, 3, 1, 2)

    return tokens_to_grid


class _Tap(nn.Module):
    """A Swin stage whose first output (hidden states) passes through ``tap``: pytorch-grad-cam
    needs a module returning a tensor, and the stage returns a tuple."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage, self.tap = stage, nn.Identity()

    def forward(self, *args, **kwargs):
        out = self.stage(*args, **kwargs)
        return (self.tap(out[0]), *out[1:])

    def __getattr__(self, name: str):  # the encoder reads the stage's attributes (downsample)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.stage, name)


def _minmax(m: torch.Tensor) -> torch.Tensor:
    flat = m.reshape(m.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).reshape(m.shape)


def test_logits_are_the_models():
    for kind in LAYERS:
        raw = tiny_model(kind)
        with torch.no_grad():
            expect = raw(X).logits
            torch.testing.assert_close(_model(kind)(X), expect, rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradcam_layer_and_map_match_pytorch_grad_cam(kind):
    cams = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer, transform = LAYERS[kind]
    model = _model(kind)
    assert default_layer(model) == layer
    ours = absgrad.explain(model, X, T, "gradcam")
    module = model.get_submodule(layer)
    if kind == "swin":
        parent, _, last = layer.rpartition(".")
        tapped = _Tap(module)
        model.get_submodule(parent)._modules[last] = tapped
        module = tapped.tap
    with cams.GradCAM(
        model=model, target_layers=[module], reshape_transform=_reshape(transform)
    ) as cam:
        theirs = cam(input_tensor=X, targets=[ClassifierOutputTarget(int(c)) for c in T])
    theirs = _minmax(torch.from_numpy(np.asarray(theirs, dtype=np.float32)))
    assert float(ours.std()) > 0.05  # not a flat map
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_guided_backprop_rewrites_their_activation_modules(kind):
    """transformers' own activation modules (GELUActivation...) are guided as torch's are: the
    map equals the one of the same model with each replaced by torch's module of the same
    function, and no activation is left outside modules (the run's preflight has no caveat)."""
    model = _model(kind)
    x1 = X[:1]
    assert guided_backprop_support(model, x1) == (None, None)
    assert unreachable_activations(model, x1) == []
    ours = absgrad.explain(model, X, T, "gb")
    same = _model(kind)
    swapped = 0
    for name, m in list(same.named_modules()):
        if type(m).__name__ == "GELUActivation":
            parent, _, child = name.rpartition(".")
            same.get_submodule(parent)._modules[child] = nn.GELU()
            swapped += 1
    if kind == "resnet":
        assert swapped == 0  # nn.ReLU already
    else:
        assert swapped > 0
    torch.testing.assert_close(ours, absgrad.explain(same, X, T, "gb"), rtol=0, atol=1e-6)
    plain = absgrad.explain(model, X, T, "vg")
    assert (ours - plain).abs().max() > 0.05  # guided, not the plain gradient
