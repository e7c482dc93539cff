"""Agreement with peer libraries (Captum, pytorch-grad-cam) on a small torchvision ResNet.

The max absolute differences are printed (``pytest -s``) so they can be quoted.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import absgrad

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(7)
    return torch.randn(2, 3, 64, 64, generator=g), torch.tensor([3, 8])


def _report(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.detach(), theirs.detach()
    diff = float((ours - theirs).abs().max())
    scale = float(theirs.abs().max())
    print(f"\n[peer] {name}: max |diff| = {diff:.3e} (max |value| {scale:.3e})")
    return diff / max(scale, 1e-12)


def test_vg_matches_captum_saliency(resnet, batch):
    x, t = batch
    ours = absgrad.attribute(resnet, x, t, "vg")
    theirs = captum_attr.Saliency(resnet).attribute(x, target=t, abs=False).detach()
    assert _report("VG vs Captum Saliency", ours, theirs) < 1e-5
    # and the map step equals Captum's abs-saliency summed over channels, min-max scaled
    ours_map = absgrad.explain(resnet, x, t, "vg")
    s = captum_attr.Saliency(resnet).attribute(x, target=t).sum(1)
    s = (s - s.amin((1, 2), keepdim=True)) / (
        s.amax((1, 2), keepdim=True) - s.amin((1, 2), keepdim=True)
    )
    assert _report("VG map vs Captum |Saliency|", ours_map, s) < 1e-5


def test_ig_fixed_baseline_matches_captum_trapezoid(resnet, batch):
    x, t = batch
    base = torch.zeros_like(x)
    ours = absgrad.attribute(
        resnet, x, t, "ig", baselines=base, n_samples=1, steps=16, rule="trapezoid"
    )
    theirs = captum_attr.IntegratedGradients(resnet).attribute(
        x, baselines=base, target=t, n_steps=16, method="riemann_trapezoid"
    )
    # Captum's riemann_trapezoid weights are 1/n with halved end points (they sum to (n-1)/n),
    # the textbook trapezoid's are 1/(n-1): the two differ by exactly that factor.
    ours = ours * (15 / 16)
    assert _report("IG (trapezoid, 16 steps) vs Captum IntegratedGradients", ours, theirs) < 1e-5


def test_gb_matches_captum_guided_backprop(resnet, batch):
    x, t = batch
    ours = absgrad.attribute(resnet, x, t, "gb")
    theirs = captum_attr.GuidedBackprop(resnet).attribute(x, target=t)
    assert _report("GB vs Captum GuidedBackprop", ours, theirs) < 1e-5
    # the model is left unpatched: a plain gradient afterwards is the ordinary gradient
    torch.testing.assert_close(
        absgrad.attribute(resnet, x, t, "vg"),
        captum_attr.Saliency(resnet).attribute(x, target=t, abs=False),
    )


def test_gb_both_hook_is_plain_gradient(resnet, batch):
    x, t = batch
    torch.testing.assert_close(
        absgrad.attribute(resnet, x, t, "gb", hook="both"), absgrad.attribute(resnet, x, t, "vg")
    )


def test_gradcam_matches_captum_layer_gradcam(resnet, batch):
    x, t = batch
    ours = absgrad.attribute(resnet, x, t, "gradcam")  # default layer for ResNet: layer4
    cam = captum_attr.LayerGradCam(resnet, resnet.layer4).attribute(
        x, target=t, relu_attributions=True
    )
    theirs = captum_attr.LayerAttribution.interpolate(cam, (64, 64), interpolate_mode="bilinear")
    assert _report("Grad-CAM vs Captum LayerGradCam", ours, theirs) < 1e-5


def test_gradcam_map_matches_pytorch_grad_cam(resnet, batch):
    cams = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x, t = batch
    ours = absgrad.explain(resnet, x, t, "gradcam")
    with cams.GradCAM(model=resnet, target_layers=[resnet.layer4]) as cam:
        theirs = torch.from_numpy(
            cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])
        )
    # pytorch-grad-cam resizes with OpenCV and min-max scales; compare the normalised maps
    assert _report("Grad-CAM map vs pytorch-grad-cam", ours, theirs) < 1e-4
