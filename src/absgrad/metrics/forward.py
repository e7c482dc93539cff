"""The metrics' forward passes: softmax probabilities of (perturbed) images, in chunks.

:func:`chunk_probs` is the one place where a metric calls the model; everything else
(:func:`forward_probs`, :class:`ForwardQueue`, :func:`resolve_or_predict`) goes through it.
Call these under ``torch.inference_mode()`` and :class:`absgrad.utils.model_state.eval_mode`
(:func:`perturbed_probs` does both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from absgrad.utils.model_state import eval_mode
from absgrad.utils.validation import (
    check_batch_size,
    check_finite_logits,
    check_logits,
    check_target_classes,
    resolve_target,
)

if TYPE_CHECKING:
    from absgrad.metrics.perturbation import PerturbedBatch

#: Perturbed images per forward pass when the caller gives none.
DEFAULT_BATCH_SIZE = 64


def check_model(model: object) -> nn.Module:
    """Accept an ``nn.Module`` (or any callable mapping ``(N, C, H, W)`` to ``(N, K)`` logits)."""
    if not callable(model):
        raise TypeError(
            f"model must be a torch.nn.Module or a callable, got {type(model).__name__}"
        )
    return model  # type: ignore[return-value]


def chunk_probs(model: nn.Module, chunk: Tensor) -> Tensor:
    """Softmax probabilities ``(N, K)`` of one chunk ``(N, C, H, W)``; NaN or infinite logits raise.

    The metrics' only call of the model.
    """
    logits = check_finite_logits(check_logits(model(chunk), chunk.shape[0]))
    return torch.softmax(logits.float(), dim=1)


def forward_probs(model: nn.Module, images: Tensor, batch_size: int) -> Tensor:
    """Softmax probabilities ``(N, K)`` of ``images (N, C, H, W)``, fed in chunks of ``batch_size``."""
    return torch.cat(
        [
            chunk_probs(model, images[start : start + batch_size])
            for start in range(0, images.shape[0], batch_size)
        ]
    )


class ForwardQueue:
    """Target probabilities of many perturbed-image requests, fed in full chunks.

    :meth:`put` appends ``images (N, C, H, W)`` with their ``targets (N,)`` and returns the
    rows' slice in :meth:`probs`; whenever ``batch_size`` rows are pending they go through the
    model, so the requests of many maps share chunks and only the last chunk can be short.
    """

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        from absgrad.inference.allocator import tune_allocator

        tune_allocator()  # the runner's per-pass cost for every caller (idempotent, glibc only)
        self.model = model
        self.batch_size = check_batch_size(batch_size)
        self._parts: list[tuple[Tensor, Tensor]] = []
        self._pending = 0
        self._total = 0
        self._outs: list[Tensor] = []

    def put(self, images: Tensor, targets: Tensor) -> slice:
        """Queue ``images`` (run as soon as a chunk is full); returns their rows' slice."""
        n = images.shape[0]
        if targets.shape != (n,):
            raise ValueError(f"targets must have shape ({n},), got {tuple(targets.shape)}")
        rows = slice(self._total, self._total + n)
        self._total += n
        if n:
            self._parts.append((images, targets))
            self._pending += n
        while self._pending >= self.batch_size:
            self._run(self.batch_size)
        return rows

    def flush(self) -> None:
        """Run what is still pending (one short chunk at most)."""
        if self._pending:
            self._run(self._pending)

    def probs(self) -> Tensor:
        """``(rows,)`` target probabilities of everything put so far (flushes first)."""
        self.flush()
        if not self._outs:
            return torch.zeros(0)
        return torch.cat(self._outs)

    def _run(self, n: int) -> None:
        images, targets, need = [], [], n
        while need:
            x, t = self._parts[0]
            k = min(need, x.shape[0])
            images.append(x[:k])
            targets.append(t[:k])
            if k == x.shape[0]:
                self._parts.pop(0)
            else:
                self._parts[0] = (x[k:], t[k:])
            need -= k
        chunk = images[0] if len(images) == 1 else torch.cat(images)
        t = targets[0] if len(targets) == 1 else torch.cat(targets)
        probs = chunk_probs(self.model, chunk)
        check_target_classes(t, probs.shape[1])
        self._outs.append(probs.gather(1, t.to(probs.device)[:, None])[:, 0])
        self._pending -= n


def gather_target(probs: Tensor, target: object, batch: int, repeats: int) -> Tensor:
    """Pick the target's probability from ``probs (batch*repeats, K)`` -> ``(batch, repeats)``.

    ``probs`` rows are image-major (all perturbations of image 0 first).
    """
    t = resolve_target(target, batch, probs.shape[1])
    if t is None:
        raise ValueError("target is required here")
    p = probs.reshape(batch, repeats, -1)
    return p.gather(2, t.to(p.device).reshape(batch, 1, 1).expand(batch, repeats, 1))[..., 0]


def resolve_or_predict(
    model: nn.Module, x: Tensor, target: object, batch_size: int
) -> tuple[Tensor, Tensor | None]:
    """Target as ``(B,)`` long tensor; ``None`` means the model's top-1 class on ``x``.

    Returns ``(target, probs)`` where ``probs (B, K)`` is set when a clean forward pass was needed.
    """
    t = resolve_target(target, x.shape[0])
    if t is not None:
        return t.to(x.device), None
    probs = forward_probs(model, x, batch_size)
    return probs.argmax(dim=1), probs


def perturbed_probs(
    model: nn.Module, x: Tensor, target: object, batch: PerturbedBatch, batch_size: int
) -> Tensor:
    """Target probabilities ``(B*per_image,)`` of a perturbed batch's images, in chunks of
    ``batch_size``, in eval mode without autograd (``target`` None: the top-1 class on ``x``)."""
    with eval_mode(model), torch.inference_mode():
        t, _ = resolve_or_predict(model, x, target, batch_size)
        queue = ForwardQueue(model, batch_size)
        rows = queue.put(batch.images, t.repeat_interleave(batch.per_image))
        return queue.probs()[rows]
