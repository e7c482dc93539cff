"""Guided backpropagation: activation modules pass back a filtered gradient (ReLU, GELU, SiLU...)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from absgrad.methods.activations import guided_forward, is_guided
from absgrad.methods.chunking import image_slices
from absgrad.methods.processing import PROCESSINGS
from absgrad.methods.samplers import GradContext, Piece, Sampler, Samples
from absgrad.names import GB_HOOKS

#: Each hook is a processing applied to the gradient inside every activation's backward pass.
HOOK_PROCESSING: dict[str, str] = GB_HOOKS
HOOKS: dict[str, Callable[[Tensor], Tensor]] = {
    h: PROCESSINGS[p] for h, p in HOOK_PROCESSING.items()
}


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, upper: float | None, rule: str) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.upper, ctx.rule = upper, rule
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        passing = x > 0 if ctx.upper is None else (x > 0) & (x < ctx.upper)
        return HOOKS[ctx.rule](grad * passing), None, None


def _activations(model: nn.Module) -> list[tuple[nn.Module, float | None | str]]:
    """Guided modules with their ReLU upper bound, or ``"smooth"`` for other activations."""
    found: list[tuple[nn.Module, float | None | str]] = []
    for m in model.modules():
        if isinstance(m, nn.ReLU6):
            found.append((m, 6.0))
        elif isinstance(m, nn.ReLU):
            found.append((m, None))
        elif is_guided(m):
            found.append((m, "smooth"))
    return found


@contextlib.contextmanager
def guided_relus(model: nn.Module, rule: str = "positive") -> Iterator[int]:
    """Within the block, every ``nn.ReLU``/``nn.ReLU6`` of ``model`` back-propagates
    ``HOOKS[rule]`` of its gradient, and so does every smooth rectifier (GELU, SiLU, ...: see
    :mod:`absgrad.methods.activations`). The original modules are restored on exit, even on error.

    Yields the number of patched modules. Functional activations (``F.relu`` in ``forward``)
    cannot be reached and keep their plain gradient.
    """
    if rule not in HOOKS:
        raise ValueError(f"unknown guided-backprop hook {rule!r}; choose one of {tuple(HOOKS)}")
    acts = _activations(model)
    if not acts:
        raise ValueError(
            "guided backprop needs activation modules (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, ...) "
            "to guide, and the model has none (functional activations cannot be reached)"
        )
    saved = [(m, m.__dict__.get("forward")) for m, _ in acts]
    try:
        for m, upper in acts:
            if upper == "smooth":
                m.forward = guided_forward(m, HOOKS[rule])  # type: ignore[method-assign]
            else:
                m.forward = lambda x, _u=upper: _GuidedReLU.apply(x, _u, rule)  # type: ignore[method-assign]
        yield len(acts)
    finally:
        for m, old in saved:
            if old is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = old  # type: ignore[method-assign]


@dataclass
class GuidedBackpropSampler(Sampler):
    """One backward pass with guided ReLUs; ``hook``: positive (GB), negative, both, abs."""

    name: ClassVar[str] = "guided_backprop"
    hook: str = "positive"

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        with guided_relus(ctx.model, self.hook):
            for imgs in image_slices(ctx.batch, ctx.batch_size):
                yield Samples(imgs, ctx.grad(ctx.x[imgs].unsqueeze(0), imgs))
