"""Gradients of a class objective with respect to the inputs, in chunks, with the model restored."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from absgrad.errors import InputError
from absgrad.names import OBJECTIVES
from absgrad.utils.validation import check_logits, check_target_classes


def class_scores(logits: Tensor, target: Tensor, objective: str) -> Tensor:
    """The per-image objective ``(B,)`` whose input gradient is taken.

    ``logit``: the target logit (the paper's gradient). ``log_softmax``: log-probability of the
    target. ``nll``: negative log-likelihood (the reference IG code's choice; flips the sign).
    """
    if objective == "logit":
        return logits.gather(1, target[:, None])[:, 0]
    logp = torch.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    if objective == "log_softmax":
        return logp
    if objective == "nll":
        return -logp
    raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")


def differentiable_logits(model: nn.Module, x: Tensor) -> Tensor:
    """``(n, K)`` logits of ``x`` (which requires grad) that carry its gradient; a model whose
    output has none (detached, computed under ``no_grad``) is an :class:`InputError`."""
    logits = check_logits(model(x), x.shape[0])
    if not logits.requires_grad:
        raise InputError(
            "the model's output has no gradient with respect to its input (is it detached, or "
            "computed under torch.no_grad() or inference_mode?): saliency maps need one"
        )
    return logits


def input_gradient(model: nn.Module, x: Tensor, target: Tensor, objective: str = "logit") -> Tensor:
    """``d objective(model(x))_target / d x`` for a batch ``x (n, C, H, W)``, ``target (n,)``."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = differentiable_logits(model, xg)
        check_target_classes(target, logits.shape[1])
        score = class_scores(logits, target, objective).sum()
        (grad,) = torch.autograd.grad(score, xg)
    return grad


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int = 16) -> Tensor:
    """Logits ``(B, K)`` of the model on ``x``, in chunks, without autograd."""
    outs = [
        check_logits(model(x[i : i + batch_size]), len(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(outs)
