"""Grad-CAM on vision transformers and modern CNNs: the default layer, token/NHWC reshapes,
pytorch-grad-cam with its hand-written reshape transforms as the reference, clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision

import absgrad
from absgrad.errors import AbsgradError
from absgrad.methods import METHODS
from absgrad.methods.layers import LayerError, default_layer, feature_map, find_layer

timm = pytest.importorskip("timm")

# small timm models with random weights (nothing downloads): name -> (kwargs, input size)
SMALL = {
    "resnet18": ({}, 64),
    "densenet121": ({}, 64),
    "efficientnet_b0": ({}, 64),
    "convnext_atto": ({}, 64),  # 1 x 1 convolutions as its MLP (NCHW throughout)
    "convnext_tiny": ({"depths": (1, 1, 2, 1), "dims": (8, 16, 24, 32)}, 64),  # NHWC MLP
    "vit_tiny_patch16_224": ({"img_size": 64, "depth": 2}, 64),
    "deit_tiny_distilled_patch16_224": ({"img_size": 64, "depth": 2}, 64),
    "vit_small_patch16_224": (
        {"img_size": 64, "depth": 1, "embed_dim": 48, "num_heads": 2, "reg_tokens": 4}, 64
    ),
    "swin_tiny_patch4_window7_224": (
        {"img_size": 96, "depths": (1, 1, 1, 1), "embed_dim": 24,
         "num_heads": (1, 1, 1, 1), "window_size": 3}, 96
    ),
}  # fmt: skip


def small(name: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    kwargs, size = SMALL[name]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return model, x, torch.tensor([1, 3])


@pytest.mark.parametrize(
    "name, layer, grid",
    [
        ("resnet18", "layer4", (2, 2)),
        ("densenet121", "features.denseblock4", (2, 2)),
        ("efficientnet_b0", "blocks.6", (2, 2)),
        ("convnext_atto", "stages.3", (2, 2)),
        ("convnext_tiny", "stages.3", (2, 2)),
        ("vit_tiny_patch16_224", "blocks.1.norm1", (4, 4)),
        ("deit_tiny_distilled_patch16_224", "blocks.1.norm1", (4, 4)),
        ("vit_small_patch16_224", "blocks.0.norm1", (4, 4)),  # class + 4 register tokens
        ("swin_tiny_patch4_window7_224", "layers.3", (3, 3)),
    ],
)
def test_default_layer_and_its_feature_map(name, layer, grid):
    model, x, _ = small(name)
    assert default_layer(model) == layer
    _, module = find_layer(model, None)
    seen = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    fmap = feature_map(seen[0], model, layer, tuple(x.shape[-2:]))
    assert fmap.dim() == 4 and fmap.shape[0] == 2 and tuple(fmap.shape[2:]) == grid


@pytest.mark.parametrize(
    "factory, layer",
    [
        ("resnet18", "layer4"),
        ("densenet121", "features.denseblock4"),
        ("efficientnet_b0", "features.8"),
        ("convnext_tiny", "features.7"),
        ("swin_t", "features.7"),
        ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1"),
    ],
)
def test_default_layer_torchvision(factory, layer):
    model = getattr(torchvision.models, factory)(weights=None, num_classes=5)
    assert default_layer(model) == layer


def test_default_layer_inside_a_wrapper():
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = timm.create_model("convnext_atto", pretrained=False, num_classes=0)
            self.fc = torch.nn.Linear(self.backbone.num_features, 3)

        def forward(self, x):
            return self.fc(self.backbone(x))

    assert default_layer(Wrapped()) == "backbone.stages.3"


# -- the same map as pytorch-grad-cam with its reshape_transform ---------------------------------
def _tokens_to_grid(prefix: int, h: int, w: int):
    def reshape(t):  # written here for pytorch-grad-cam: drop prefix tokens, (B, N, C) -> NCHW
        b, _, c = t.shape
        return t[:, prefix:, :].reshape(b, h, w, c).permute(0, 3, 1, 2)

    return reshape


def _nhwc_to_nchw(t):
    return t.permute(0, 3, 1, 2)


def _minmax(m: torch.Tensor) -> torch.Tensor:
    flat = m.reshape(m.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).reshape(m.shape)


@pytest.mark.parametrize(
    "name, layer, transform",
    [
        ("vit_tiny_patch16_224", "blocks.1.norm1", _tokens_to_grid(1, 4, 4)),
        ("deit_tiny_distilled_patch16_224", "blocks.1.norm1", _tokens_to_grid(2, 4, 4)),
        ("vit_small_patch16_224", "blocks.0.norm1", _tokens_to_grid(5, 4, 4)),
        ("swin_tiny_patch4_window7_224", "layers.3", _nhwc_to_nchw),
        ("convnext_atto", "stages.3", None),
        ("convnext_atto", "stages.3.blocks.1.mlp.fc2", None),  # a 1 x 1 conv: NCHW
        ("convnext_tiny", "stages.3", None),
        ("convnext_tiny", "stages.2.blocks.1.mlp.fc2", _nhwc_to_nchw),  # Linear on NHWC
    ],
)
def test_gradcam_matches_pytorch_grad_cam(name, layer, transform):
    cams = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, t = small(name)
    ours = absgrad.explain(model, x, t, "gradcam", layer=layer)
    module = model.get_submodule(layer)
    with cams.GradCAM(model=model, target_layers=[module], reshape_transform=transform) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])
    # pytorch-grad-cam min-max scales before resizing, absgrad after: rescaling both maps to
    # [0, 1] over the full-size map removes that (bilinear resizing commutes with affine maps)
    theirs = _minmax(torch.from_numpy(np.asarray(theirs, dtype=np.float32)))
    assert float(ours.std()) > 0.05  # not a flat map
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


# -- every method on a ViT and a ConvNeXt ---------------------------------------------------------
@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "convnext_atto"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_on_transformers_and_convnext(name, method):
    model, x, t = small(name)
    params = {"n_samples": 3} if "n_samples" in METHODS[method].defaults else {}
    maps = absgrad.explain(
        model, x, t, method, generator=torch.Generator().manual_seed(0), **params
    )
    assert maps.shape == (2, *x.shape[-2:])
    assert torch.isfinite(maps).all()
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert float(maps.amax(dim=(1, 2)).min()) == 1.0 and float(maps.std()) > 0


# -- layer choice and errors -----------------------------------------------------------------------
def test_layer_parameter_selects_the_layer():
    model, x, t = small("convnext_atto")
    default = absgrad.explain(model, x, t, "gradcam")
    torch.testing.assert_close(absgrad.explain(model, x, t, "gradcam", layer="stages.3"), default)
    other = absgrad.explain(model, x, t, "gradcam", layer="stages.2")
    assert (other - default).abs().max() > 0.05


def test_unknown_layer_names_close_matches():
    model, x, t = small("convnext_atto")
    with pytest.raises(AbsgradError, match=r"'stages\.9' is not in the model.*stages\.3"):
        absgrad.explain(model, x, t, "gradcam", layer="stages.9")


@pytest.mark.parametrize(
    "layer, message", [("head", "not a feature map"), ("head.global_pool", "1 x 1 map")]
)
def test_layer_without_a_spatial_map_is_refused(layer, message):
    model, x, t = small("convnext_atto")
    with pytest.raises(LayerError, match=rf"{layer!r} outputs .*{message}"):
        absgrad.explain(model, x, t, "gradcam", layer=layer)


class _TokenNet(torch.nn.Module):
    """Patch tokens (B, 16, C) of a 64 x 64 input; ``pick`` sees only 7 of them."""

    def __init__(self):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 8, 16, stride=16)
        self.pick = torch.nn.Identity()
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.pick(tokens[:, :7]).mean(1))


def test_tokens_that_fit_no_patch_grid_are_refused():
    _, x, t = small("vit_tiny_patch16_224")
    with pytest.raises(LayerError, match=r"'pick' outputs shape \(2, 7, 8\).*not a feature map"):
        absgrad.explain(_TokenNet(), x, t, "gradcam", layer="pick")


def test_torchvision_vit_class_token_is_dropped():
    cams = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(64, 16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=5).eval()  # fmt: skip
    torch.nn.init.normal_(model.heads.head.weight, std=0.2)  # torchvision zero-initialises it
    _, x, t = small("vit_tiny_patch16_224")
    ours = absgrad.explain(model, x, t, "gradcam")  # encoder.layers.encoder_layer_1.ln_1
    module = model.encoder.layers[-1].ln_1
    with cams.GradCAM(model, [module], reshape_transform=_tokens_to_grid(1, 4, 4)) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])
    theirs = _minmax(torch.from_numpy(np.asarray(theirs, dtype=np.float32)))
    assert float(ours.std()) > 0.05
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"])
def test_last_block_output_of_a_class_token_vit_is_refused(name):
    """Its patch tokens get no gradient: a silent blank map without the check."""
    model, x, t = small(name)
    with pytest.raises(LayerError, match=r"'blocks\.1'.*zero on every patch token.*norm1"):
        absgrad.explain(model, x, t, "gradcam", layer="blocks.1")
    absgrad.explain(model, x, t, "gradcam", layer="blocks.0")  # an earlier block is fine


def test_timm_feature_info_names_the_last_stage():
    torch.manual_seed(0)
    model = timm.create_model("regnetx_002", pretrained=False, num_classes=5).eval()
    assert default_layer(model) == "s4"  # not a convolution inside its last block
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(absgrad.explain(model, x, 0, "gradcam")).all()


def test_layer_not_called_in_forward():
    model, x, t = small("vit_tiny_patch16_224")
    model.unused = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(LayerError, match="not called"):
        absgrad.explain(model, x, t, "gradcam", layer="unused")


def test_unpadded_convolutions_give_a_map():
    """A layer after "valid" convolutions (32 -> 28 -> 26 px) is a feature map at no integer
    stride; Grad-CAM agrees with a direct autograd computation of its formula."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 5), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 3),
    ).eval()  # fmt: skip
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0, 2])
    got = absgrad.explain(net, x, t, "gradcam", layer="3")
    xi = x.clone().requires_grad_(True)
    act = net[:4](xi)  # (2, 6, 26, 26)
    logits = net[4:](act)
    (grad,) = torch.autograd.grad(logits[torch.arange(2), t].sum(), act)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True)).detach()
    cam = torch.nn.functional.interpolate(cam, size=(32, 32), mode="bilinear")[:, 0]
    lo = cam.amin(dim=(1, 2), keepdim=True)
    want = (cam - lo) / (cam.amax(dim=(1, 2), keepdim=True) - lo)
    assert act.shape[-2:] == (26, 26)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
