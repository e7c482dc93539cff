"""Grad-CAM on a named layer: CNN feature maps and transformer tokens (see ``layers``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from absgrad.methods import layers
from absgrad.methods.chunking import image_slices
from absgrad.methods.gradients import class_scores, differentiable_logits
from absgrad.methods.samplers import GradContext, Piece, Sampler, Samples
from absgrad.utils.validation import check_target_classes


def default_layer(model: nn.Module) -> str:
    """The default Grad-CAM layer's name (rule: :mod:`absgrad.methods.layers`)."""
    return layers.default_layer(model)


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    return layers.find_layer(model, layer)[1]


def gradcam(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    layer: str | nn.Module | None = None,
    objective: str = "logit",
    batch_size: int = 16,
) -> Tensor:
    """Grad-CAM ``(B, 1, H, W)``: ReLU(sum_k mean(dS/dA_k) A_k), bilinearly upsampled to the input."""
    name, module = layers.find_layer(model, layer)
    captured: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    cams = []
    try:
        for imgs in image_slices(x.shape[0], batch_size):
            captured.clear()
            with torch.enable_grad():
                xi = x[imgs].detach().requires_grad_(True)  # so the layer output is in the graph
                logits = differentiable_logits(model, xi)
                check_target_classes(target[imgs], logits.shape[1])
                if not captured:
                    raise layers.LayerError(
                        f"Grad-CAM layer {name!r} was not called in the model's forward pass"
                    )
                size = (x.shape[-2], x.shape[-1])
                out = layers.layer_tensor(captured[0])  # a tuple's first entry (Hugging Face)
                act = layers.feature_map(out, model, name, size)  # (B, C, h, w)
                score = class_scores(logits, target[imgs], objective).sum()
                (raw,) = torch.autograd.grad(score, out)
                grad = layers.feature_map(raw, model, name, size)
                layers.check_patch_gradient(raw, grad, name)
            weights = grad.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach()
            cams.append(F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False))
    finally:
        handle.remove()
    return torch.cat(cams)


@dataclass
class GradCamSampler(Sampler):
    """Grad-CAM as a layer sampler: one sample per image, the ``(B, 1, H, W)`` map of
    :func:`gradcam` on ``layer`` (default: :func:`default_layer`)."""

    name: ClassVar[str] = "gradcam"
    layer: str | nn.Module | None = None

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        cam = gradcam(ctx.model, ctx.x, ctx.target, self.layer, ctx.objective, ctx.batch_size)
        yield Samples(slice(0, ctx.batch), cam.unsqueeze(0))
