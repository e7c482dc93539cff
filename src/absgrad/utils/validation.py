"""Input checks shared by methods, metrics and the protocol.

Every check raises :class:`InputError` (an ``AbsgradError``, hence a ``ValueError``) or
:class:`InputTypeError` (also a ``TypeError``) with a message that names the argument and what is
wrong with it, so that bad input never turns into a silent wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from absgrad.errors import InputError, InputTypeError


def check_images(x: object, name: str = "inputs") -> Tensor:
    """Check a batch of model inputs ``(B, C, H, W)``: float tensor, finite values."""
    if not isinstance(x, Tensor):
        raise InputTypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}"
        )
    if x.dim() != 4:
        raise InputError(
            f"{name} must have shape (B, C, H, W) (rank 4), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise InputTypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (B = 0)")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{name} contains {bad} NaN or infinite values")
    return x


def check_maps(maps: object, batch: int, size: tuple[int, int], name: str = "maps") -> Tensor:
    """Check saliency maps ``(B, H, W)`` (or ``(B, 1, H, W)``) against a batch size and image size.

    Returns the maps as float ``(B, H, W)``.
    """
    if not isinstance(maps, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(maps).__name__}")
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise InputError(f"{name} must have shape (B, H, W), got shape {tuple(maps.shape)}")
    if maps.shape[0] != batch or tuple(maps.shape[1:]) != tuple(size):
        raise InputError(
            f"{name} shape {tuple(maps.shape)} does not match the inputs: expected "
            f"({batch}, {size[0]}, {size[1]})"
        )
    maps = maps.float() if not maps.is_floating_point() else maps
    if not torch.isfinite(maps).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return maps


def resolve_target(target: object, batch: int, num_classes: int | None = None) -> Tensor | None:
    """Turn ``int``, sequence or 1-D tensor targets into a ``(B,)`` long tensor.

    Returns ``None`` when ``target`` is ``None`` (the caller then uses the predicted class).
    With ``num_classes`` the indices are checked here; without, where the model's logits give
    the class count (:func:`check_target_classes`), so that the error names it.
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise InputTypeError("target must be an int, a 1-D tensor of ints, or None; got a bool")
    if isinstance(target, int):
        t = torch.full((batch,), target, dtype=torch.long)
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise InputTypeError(
                f"target must hold integer class indices, got dtype {target.dtype}"
            )
        t = target.reshape(-1).long() if target.dim() <= 1 else None
        if t is None:
            raise InputError(
                f"target must be an int or a 1-D tensor, got shape {tuple(target.shape)}"
            )
        if t.numel() == 1 and batch > 1:
            t = t.expand(batch).clone()
    elif isinstance(target, Sequence) and not isinstance(target, str):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in target):
            raise InputTypeError("target sequence must contain ints only")
        t = torch.tensor(list(target), dtype=torch.long)
    else:
        raise InputTypeError(
            f"target must be an int, a 1-D tensor of ints, or None; got {type(target).__name__}"
        )
    if t.numel() != batch:
        raise InputError(f"target has {t.numel()} entries but the batch has {batch} images")
    if num_classes is not None:
        check_target_classes(t, num_classes)
    return t


def check_target_classes(target: Tensor, num_classes: int) -> None:
    """Every class index of ``target`` lies in ``[0, num_classes)``; else an :class:`InputError`
    naming the target and the model's class count."""
    bad = (target < 0) | (target >= num_classes)
    if bad.any():
        raise InputError(
            f"target {int(target[bad][0])} is out of range for a model with {num_classes} "
            f"classes (class indices 0..{num_classes - 1})"
        )


def check_logits(out: object, batch: int) -> Tensor:
    """Check that a model returned ``(B, K)`` logits."""
    if not isinstance(out, Tensor):
        raise InputTypeError(
            f"the model must return a (B, K) logits tensor, got {type(out).__name__}"
        )
    if out.dim() != 2 or out.shape[0] != batch:
        raise InputError(
            f"the model must return (B, K) logits with B = {batch}, got shape {tuple(out.shape)}"
        )
    return out


def check_finite_logits(logits: Tensor) -> Tensor:
    """``(B, K)`` logits without NaN or infinite values; else an :class:`InputError` saying how
    many inputs gave them (the model, not the input, is at fault)."""
    finite = torch.isfinite(logits).all(dim=1)
    if not finite.all():
        raise InputError(
            f"the model returned NaN or infinite logits for {int((~finite).sum())} of "
            f"{logits.shape[0]} inputs: check its weights (NaN after training?) and its input "
            "(size, normalisation)"
        )
    return logits


def check_positive_int(value: object, name: str) -> int:
    """A positive ``int`` (bools refused); the error names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")
    return value


def check_batch_size(batch_size: object, name: str = "batch_size") -> int:
    """A positive ``int`` of images per model call."""
    return check_positive_int(batch_size, name)
