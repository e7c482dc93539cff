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


#: Activation functions a model may call in ``forward`` (``F.relu(x)``, ``x.relu()``), which
#: guided backprop cannot reach: only activation *modules* are rewritten.
def _activation_functions() -> frozenset[object]:
    import torch.nn.functional as F

    return frozenset(
        {
            F.relu, F.relu_, F.relu6, F.hardtanh, F.hardtanh_, F.gelu, F.silu, F.mish,
            F.hardswish, F.elu, F.elu_, F.celu, F.selu, F.leaky_relu, F.leaky_relu_,
            F.softplus, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_,
        }
    )  # fmt: skip


def unreachable_activations(model: nn.Module, x: Tensor) -> list[str]:
    """The activation functions ``model``'s forward pass on ``x`` calls outside every activation
    module (``F.relu(x)`` in a ``forward``): guided backprop leaves them plain, so a map would be
    partly a plain gradient. Returns their names in call order (empty: every activation is a
    module guided backprop rewrites)."""
    from torch.overrides import TorchFunctionMode

    funcs = _activation_functions()
    depth = [0]
    found: list[str] = []

    class _Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            if depth[0] == 0 and func in funcs:
                found.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    def enter(*_: object) -> None:
        depth[0] += 1

    def leave(*_: object) -> None:
        depth[0] -= 1

    handles = []
    for m, _ in _activations(model):
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    try:
        with torch.no_grad(), _Watch():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


def guided_backprop_support(model: nn.Module, x: Tensor) -> tuple[str | None, str | None]:
    """``(problem, caveat)`` of guided backprop on ``model`` (``x``: one example input
    ``(1, C, H, W)``). ``problem``: why it cannot run at all (no activation module to guide).
    ``caveat``: activation functions called outside modules that it leaves plain, as the
    module-based implementations of the field do (Captum, pytorch-grad-cam; torchvision's
    DenseNet ends with ``F.relu``), so its maps are guided everywhere else."""
    if not _activations(model):
        return (
            "the model has no activation modules (nn.ReLU, nn.GELU, nn.SiLU, ...) to guide: "
            "its activations are functions called in forward (F.relu), which cannot be reached",
            None,
        )
    missed = unreachable_activations(model, x)
    if not missed:
        return None, None
    kinds = ", ".join(sorted(set(missed)))
    return None, (
        f"guided backprop leaves {len(missed)} activation function(s) of the model's forward "
        f"({kinds}, called outside activation modules) with their plain gradient"
    )


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
