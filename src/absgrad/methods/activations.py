"""Which activation modules guided backpropagation rewrites, and their guided backward pass.

The guided rule of an activation ``y = f(x)`` replaces its backward pass ``g -> f'(x) g`` by
``g -> hook(f'(x) g)`` (``hook``: keep the positive part for the original guided backprop).
For ``ReLU`` (``f' = [x > 0]``) this is exactly Springenberg et al.'s rule; for ``ReLU6`` the
pass band is ``0 < x < 6``. As an extension, the same rule applies to the smooth rectifiers of
modern networks (GELU in ViT/ConvNeXt, SiLU/Swish in EfficientNet, Mish, Hardswish, ELU, ...),
so a model without ReLUs gets a guided map, never silently a plain gradient. Gates (Sigmoid,
Tanh, Hardsigmoid in squeeze-excitation or attention) and softmax keep their plain gradient.
timm's and Hugging Face transformers' own activation modules (``GELUActivation``,
``NewGELUActivation``...: modules calling ``F.gelu`` inside) are rewritten alike. Activations
called as functions in ``forward`` (``F.gelu(x)``) cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

#: torch.nn activation types the guided rule applies to (ReLU and ReLU6 use a mask directly).
GUIDED_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Softplus,
)
#: Class names of timm's own activation modules (timm.layers.activations*) and of Hugging Face
#: transformers' (transformers.activations.ACT2CLS: rectifiers only, not gates or identity)
#: treated alike.
GUIDED_NAMES = frozenset(
    {
        "GELU", "GELUTanh", "QuickGELU", "Swish", "SwishMe", "SwishAuto", "Mish", "MishMe",
        "MishAuto", "HardSwish", "HardSwishMe", "HardMish", "HardMishMe",
        # transformers
        "GELUActivation", "NewGELUActivation", "FastGELUActivation", "QuickGELUActivation",
        "AccurateGELUActivation", "ClippedGELUActivation", "PytorchGELUTanh", "MishActivation",
        "SiLUActivation", "ReLUSquaredActivation", "LaplaceActivation", "XIELUActivation",
    }
)  # fmt: skip


def is_guided(module: nn.Module) -> bool:
    """Whether guided backpropagation rewrites ``module``'s backward pass."""
    return isinstance(module, GUIDED_TYPES) or type(module).__name__ in GUIDED_NAMES


class _GuidedActivation(torch.autograd.Function):
    """``f(x)`` forward; backward ``hook(f'(x) * grad)``, ``f'`` by autograd on a copy of ``x``."""

    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor], hook: Callable) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.fn, ctx.hook = fn, hook
        return fn(x.clone())  # a copy: in-place activations must not overwrite the saved input

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            (local,) = torch.autograd.grad(ctx.fn(xd.clone()), xd, grad)
        return ctx.hook(local), None, None


def guided_forward(
    module: nn.Module, hook: Callable[[Tensor], Tensor]
) -> Callable[[Tensor], Tensor]:
    """A replacement ``forward`` for a smooth activation ``module`` with the guided backward."""
    fn = type(module).forward.__get__(module)
    return lambda x: _GuidedActivation.apply(x, fn, hook)
