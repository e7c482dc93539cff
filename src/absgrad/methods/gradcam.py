"""Grad-CAM on a named layer (SPEC §2.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from absgrad.methods.chunking import image_slices
from absgrad.methods.gradients import check_target_range, class_scores
from absgrad.utils.validation import check_logits


def default_layer(model: nn.Module) -> str:
    """The last convolutional block: ResNet ``layer4``, DenseNet ``features.denseblock4``,
    EfficientNet (timm) the last of ``blocks``."""
    names = dict(model.named_modules())
    for name in ("layer4", "features.denseblock4", "model.layer4"):
        if name in names:
            return name
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.Sequential) and len(blocks):
        return f"blocks.{len(blocks) - 1}"
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise ValueError("no convolutional layer found for Grad-CAM; pass layer='<module name>'")


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    name = default_layer(model) if layer is None else layer
    modules = dict(model.named_modules())
    if name not in modules:
        sample = ", ".join(n for n in list(modules)[1:8])
        raise ValueError(f"Grad-CAM layer {name!r} is not in the model (its modules include: {sample}, ...)")
    return modules[name]


def gradcam(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    layer: str | nn.Module | None = None,
    objective: str = "logit",
    batch_size: int = 16,
) -> Tensor:
    """Grad-CAM ``(B, 1, H, W)``: ReLU(sum_k mean(dS/dA_k) A_k), bilinearly upsampled to the input."""
    module = resolve_layer(model, layer)
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    cams = []
    try:
        for imgs in image_slices(x.shape[0], batch_size):
            captured.clear()
            with torch.enable_grad():
                xi = x[imgs].detach().requires_grad_(True)  # so the layer output is in the graph
                logits = check_logits(model(xi), xi.shape[0])
                check_target_range(logits, target[imgs])
                act = captured[0]
                score = class_scores(logits, target[imgs], objective).sum()
                (grad,) = torch.autograd.grad(score, act)
            weights = grad.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach()
            cams.append(F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False))
    finally:
        handle.remove()
    return torch.cat(cams)
