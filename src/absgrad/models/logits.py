"""Model outputs -> ``(B, K)`` class logits.

A model returning a ``(B, K)`` tensor is used as is. A dict or an object with ``logits``
(Hugging Face), a tuple (first entry), class scores per token ``(B, N, K)`` (the class token when
the model has one, else the mean over tokens) or ``(B, K, 1, 1)`` is given a forward that returns
the logits; its module names (Grad-CAM layers) stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError
from absgrad.utils.devices import model_device


def to_logits(out: Any, model: nn.Module) -> Tensor:
    """A model output -> ``(B, K)`` logits (see the module docstring for the rules)."""
    if isinstance(out, Tensor):
        if out.dim() == 3:  # (B, N, K) class scores per token
            has_cls = getattr(model, "cls_token", None) is not None or isinstance(
                getattr(model, "class_token", None), Tensor
            )
            return out[:, 0] if has_cls else out.mean(dim=1)
        if out.dim() == 4 and out.shape[2:] == (1, 1):
            return out[:, :, 0, 0]
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return to_logits(logits, model)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return to_logits(out[0], model)
    keys = f" with keys {sorted(map(str, out))}" if isinstance(out, Mapping) else ""
    raise AbsgradError(
        f"the model returned {type(out).__name__}{keys}; absgrad needs (B, K) class logits: "
        "a tensor, a dict or object with 'logits', or a tuple whose first entry is the logits"
    )


def logits_model(model: nn.Module) -> nn.Module:
    """``model`` with a forward returning ``(B, K)`` logits; its module names are unchanged.

    The model's class is swapped for a subclass whose ``forward`` post-processes the original
    output with :func:`to_logits`; ``isinstance`` checks and Grad-CAM layer names still hold.
    """
    base = type(model)
    if getattr(base, "_absgrad_logits", False):
        return model

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Tensor:
        return to_logits(base.forward(self, *args, **kwargs), self)

    model.__class__ = type(
        base.__name__,
        (base,),
        {"forward": forward, "_absgrad_logits": True, "__module__": base.__module__},
    )
    return model


def output_classes(model: nn.Module, size: tuple[int, int]) -> int:
    """Run one zero image ``(1, 3, H, W)`` and return K of the ``(1, K)`` output (checked)."""
    x = torch.zeros(1, 3, *size, device=model_device(model))
    with torch.inference_mode():
        out = model.eval()(x)
    return logits_classes(out, size)


def logits_classes(out: Any, size: tuple[int, int]) -> int:
    """K of a model's ``(1, K)`` output for one ``(1, 3, H, W)`` image; an error for any other
    output."""
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise AbsgradError(
            f"the model's output for a (1, 3, {size[0]}, {size[1]}) input is {shape}; "
            "absgrad needs (B, K) class logits"
        )
    return int(out.shape[1])


__all__ = ["logits_classes", "logits_model", "output_classes", "to_logits"]
