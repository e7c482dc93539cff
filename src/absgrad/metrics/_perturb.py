"""Shared machinery for the perturbation metrics (RCAP, deletion/insertion).

Thresholds, top-fraction masks, normalisation, the Gaussian blur and the batched forward pass.
Nothing here loops over pixels: every perturbed image of a batch is built in one tensor op and
then fed through the model in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import torch
from torch import Tensor, nn

from absgrad.utils.validation import check_images, check_logits, check_maps, resolve_target

Normalization = tuple[Sequence[float], Sequence[float]]

#: ImageNet mean / std (torchvision and most timm models).
IMAGENET: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: mean = std = 0.5: inputs in [-1, 1] (the EfficientNet-Lite0 demo model).
SYMMETRIC: Normalization = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

DEFAULT_BATCH_SIZE = 64


def fraction_positions(n: int, fractions: Sequence[float]) -> list[int]:
    """Sorted positions ``floor(n * f) - 1`` for each fraction ``f`` (exact decimal arithmetic).

    ``f`` is read as the decimal it prints as (``0.7`` is 7/10, not the nearest double), so
    ``floor`` never drops a pixel through float round-off. A position of -1 means "below the
    minimum" (the whole image is selected).
    """
    return [math.floor(Fraction(repr(float(f))) * n) - 1 for f in fractions]


def sorted_values(maps: Tensor) -> Tensor:
    """Each map's values in ascending order, ``(B, H*W)`` (sort once, threshold many times)."""
    return maps.reshape(maps.shape[0], -1).sort(dim=1).values


def thresholds(maps: Tensor, positions: Sequence[int], *, ordered: Tensor | None = None) -> Tensor:
    """Per-image thresholds ``(B, P)``: the values at ascending sorted ``positions`` of each map.

    ``maps``: ``(B, H, W)``; ``ordered``: their :func:`sorted_values` if already computed. A
    position of -1 gives ``-inf`` (every pixel lies above it).
    """
    if ordered is None:
        ordered = sorted_values(maps)
    pos = torch.tensor(list(positions), dtype=torch.long, device=maps.device)
    thr = ordered[:, pos.clamp(min=0)]
    return torch.where(pos >= 0, thr, torch.full_like(thr, -math.inf))


def above(maps: Tensor, thr: Tensor) -> Tensor:
    """Boolean masks ``(B, P, H, W)``: pixels of ``maps (B, H, W)`` strictly above ``thr (B, P)``."""
    return maps[:, None] > thr[:, :, None, None]


def check_normalization(normalization: object, channels: int) -> tuple[Tensor, Tensor]:
    """Validate ``(mean, std)`` and return them as ``(C, 1, 1)`` tensors."""
    try:
        mean, std = normalization  # type: ignore[misc]
        mean_t = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise TypeError(
            "normalization must be a pair (mean, std) of per-channel sequences, "
            f"got {normalization!r}"
        ) from err
    for name, t in (("mean", mean_t), ("std", std_t)):
        if t.numel() not in (1, channels):
            raise ValueError(
                f"normalization {name} has {t.numel()} values but the inputs have {channels} channels"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"normalization {name} must be finite, got {t.tolist()}")
    if (std_t <= 0).any():
        raise ValueError(f"normalization std must be > 0, got {std_t.tolist()}")
    return mean_t.expand(channels).reshape(-1, 1, 1), std_t.expand(channels).reshape(-1, 1, 1)


def check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def prepare(
    inputs: object, maps: object, *, name: str = "maps", nonnegative: bool = False
) -> tuple[Tensor, Tensor]:
    """Validate inputs ``(B, C, H, W)`` and maps ``(B, H, W)`` (or ``(B, 1, H, W)``)."""
    x = check_images(inputs)
    m = check_maps(maps, x.shape[0], (x.shape[2], x.shape[3]), name=name)
    if nonnegative and (m < 0).any():
        raise ValueError(
            f"{name} has negative values; this metric treats the map as a mass "
            "(take |A| or min-max scale it first, e.g. absgrad.utils.maps.to_map)"
        )
    return x, m.to(device=x.device)


def gaussian_kernel1d(kernel_size: int, sigma: float, dtype: torch.dtype) -> Tensor:
    """The normalised 1-D Gaussian sampled at ``-(k//2) .. k//2`` (torchvision's convention)."""
    half = (kernel_size - 1) * 0.5
    xs = torch.linspace(-half, half, kernel_size, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (xs / sigma) ** 2)
    return (pdf / pdf.sum()).to(dtype)


def _reflect_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices for reflect padding (edge not repeated) that also work when ``pad >= n``."""
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def gaussian_blur(x: Tensor, kernel_size: int = 33, sigma: float = 16.0) -> Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding.

    Equals ``torchvision.transforms.functional.gaussian_blur`` (and so ``GaussianBlur``) wherever
    that works; unlike it, also accepts images smaller than half the kernel (the reflection
    then repeats, as numpy's ``reflect`` mode does).
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel_size must be a positive odd int, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    _, c, h, w = x.shape
    pad = kernel_size // 2
    k = gaussian_kernel1d(kernel_size, sigma, x.dtype).to(x.device)
    xp = x.index_select(2, _reflect_index(h, pad, x.device))
    xp = xp.index_select(3, _reflect_index(w, pad, x.device))
    kh = k.reshape(1, 1, kernel_size, 1).expand(c, 1, kernel_size, 1)
    kw = k.reshape(1, 1, 1, kernel_size).expand(c, 1, 1, kernel_size)
    out = torch.nn.functional.conv2d(xp, kh, groups=c)
    return torch.nn.functional.conv2d(out, kw, groups=c)


class eval_mode:
    """Context manager: put a model in eval mode and restore its train/eval flags afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.flags: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        if isinstance(self.model, nn.Module):
            flags = [(m, m.training) for m in self.model.modules()]
            if any(flag for _, flag in flags):
                self.flags = flags
                self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        for m, flag in self.flags:
            m.training = flag


def check_model(model: object) -> nn.Module:
    """Accept an ``nn.Module`` (or any callable mapping ``(N, C, H, W)`` to ``(N, K)`` logits)."""
    if not callable(model):
        raise TypeError(
            f"model must be a torch.nn.Module or a callable, got {type(model).__name__}"
        )
    return model  # type: ignore[return-value]


def forward_probs(model: nn.Module, images: Tensor, batch_size: int) -> Tensor:
    """Softmax probabilities ``(N, K)`` of ``images (N, C, H, W)``, fed in chunks of ``batch_size``.

    Call under ``torch.inference_mode()`` and :class:`eval_mode`.
    """
    return torch.cat(
        [
            checked_probs(model, images[start : start + batch_size])
            for start in range(0, images.shape[0], batch_size)
        ]
    )


def checked_probs(model: nn.Module, chunk: Tensor) -> Tensor:
    """Softmax probabilities ``(N, K)`` of one chunk; NaN or infinite logits raise."""
    logits = check_logits(model(chunk), chunk.shape[0])
    if not torch.isfinite(logits).all():
        raise ValueError("the model returned NaN or infinite logits")
    return torch.softmax(logits.float(), dim=1)


class ForwardQueue:
    """Target probabilities of many perturbed-image requests, fed in full chunks.

    :meth:`put` appends ``images (N, C, H, W)`` with their ``targets (N,)`` and returns the
    rows' slice in :meth:`probs`; whenever ``batch_size`` rows are pending they go through the
    model, so the requests of many maps share chunks and only the last chunk can be short.
    Use under ``torch.inference_mode()`` and :class:`eval_mode`.
    """

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        from absgrad.utils.allocator import tune_allocator

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
        probs = checked_probs(self.model, chunk)
        if int(t.max()) >= probs.shape[1]:
            raise ValueError(
                f"target class {int(t.max())} is out of range for {probs.shape[1]} model outputs"
            )
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
    Call under ``torch.inference_mode()`` and :class:`eval_mode`.
    """
    t = resolve_target(target, x.shape[0])
    if t is not None:
        return t.to(x.device), None
    probs = forward_probs(model, x, batch_size)
    return probs.argmax(dim=1), probs


def check_probs(probs: object, batch: int, name: str, device: torch.device) -> Tensor:
    """Validate precomputed target probabilities ``(B,)`` in [0, 1]."""
    if not isinstance(probs, Tensor):
        probs = torch.as_tensor(probs)
    if probs.dim() != 1 or probs.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(probs.shape)}")
    probs = probs.to(device=device, dtype=torch.float32)
    if not torch.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return probs
