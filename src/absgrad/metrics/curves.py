"""Deletion / insertion curves and their areas (DAUC, IAUC; Petsiuk et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from absgrad.methods.blur import gaussian_kernel1d, separable_blur
from absgrad.metrics.forward import (
    DEFAULT_BATCH_SIZE,
    check_model,
    forward_probs,
    gather_target,
    perturbed_probs,
    resolve_or_predict,
)
from absgrad.metrics.grid import curve_positions, trapezoid_area
from absgrad.metrics.inputs import check_probs, prepare
from absgrad.metrics.perturbation import PerturbContext
from absgrad.metrics.thresholds import above, thresholds
from absgrad.utils.model_state import eval_mode
from absgrad.utils.normalization import IMAGENET, Normalization, check_normalization
from absgrad.utils.validation import InputError, check_batch_size, check_images, check_positive_int

BLUR_KERNEL = 33
BLUR_SIGMA = 16.0


@dataclass(frozen=True)
class AUCResult:
    """Deletion and insertion curves ``(B, steps)`` (target probability at ``r = k / steps``)
    and the dataset-level areas: ``dauc``/``iauc`` = :func:`auc` of the mean curve over images."""

    deletion: Tensor
    insertion: Tensor
    dauc: float
    iauc: float
    fractions: tuple[float, ...]

    @property
    def dauc_per_image(self) -> Tensor:
        """``(B,)`` area under each image's deletion curve (lower is better)."""
        return auc(self.deletion)

    @property
    def iauc_per_image(self) -> Tensor:
        """``(B,)`` area under each image's insertion curve (higher is better)."""
        return auc(self.insertion)

    def details(self) -> dict[str, Tensor]:
        """The curves stored next to the scores: ``deletion``, ``insertion`` ``(B, steps)``."""
        return {"deletion": self.deletion, "insertion": self.insertion}


def auc(curve: Tensor) -> Tensor:
    """Trapezoid area of ``curve (..., steps)`` with spacing ``1 / steps`` (the last dim).

    The paper's convention: the ``steps`` points are integrated against ``x = 1/steps ... 1``,
    so a curve stuck at 1 scores ``(steps - 1) / steps`` (0.9 for 10 points), not 1.
    """
    if not isinstance(curve, Tensor):
        curve = torch.as_tensor(curve, dtype=torch.float64)
    if curve.dim() == 0 or curve.shape[-1] < 1:
        raise InputError(
            f"curve must have at least one point on its last dim, got {tuple(curve.shape)}"
        )
    return trapezoid_area(curve)


def target_probs(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | list[int] | None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tensor:
    """Softmax probability ``(B,)`` of the target class on ``inputs (B, C, H, W)``.

    Compute it once per image for the clean and for the blurred image (:func:`blurred`) and pass
    both to :func:`deletion_insertion` to skip its ``r = 0`` forward passes across many maps.
    """
    model = check_model(model)
    batch_size = check_batch_size(batch_size)
    x = check_images(inputs)
    with eval_mode(model), torch.inference_mode():
        t, probs = resolve_or_predict(model, x, target, batch_size)
        if probs is None:
            probs = forward_probs(model, x, batch_size)
        return gather_target(probs, t, x.shape[0], 1)[:, 0]


def blurred(inputs: Tensor, *, kernel_size: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> Tensor:
    """The insertion start image: Gaussian blur (kernel 33, sigma 16, reflect padding) of
    normalised ``inputs (B, C, H, W)``.

    Equals ``torchvision.transforms.functional.gaussian_blur`` wherever that works; unlike it,
    also accepts images smaller than half the kernel (the reflection then repeats, as scipy's
    ``mirror`` mode does).
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"blur kernel_size must be an int, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel_size must be a positive odd int, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    x = check_images(inputs)
    # H then W: the pass order this metric has always used (it changes float rounding only)
    return separable_blur(x, gaussian_kernel1d(sigma, kernel_size // 2, x.dtype), dims=(2, 3))


def deletion_insertion(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | list[int] | None,
    maps: Tensor,
    *,
    steps: int = 10,
    normalization: Normalization = IMAGENET,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clean_probs: Tensor | None = None,
    blurred_probs: Tensor | None = None,
    blur_kernel: int = BLUR_KERNEL,
    blur_sigma: float = BLUR_SIGMA,
) -> AUCResult:
    """Deletion and insertion curves of saliency maps.

    Args:
        model: classifier returning ``(N, K)`` logits (evaluated in eval mode, flags restored).
        inputs: normalised model inputs ``(B, C, H, W)``.
        target: class per image; ``None`` = top-1 class on ``inputs``.
        maps: ``(B, H, W)`` or ``(B, 1, H, W)``; only the ranking of values matters.
        steps: curve points at ``r = 0, 1/steps, ..., (steps-1)/steps``.
        normalization: ``(mean, std)`` of ``inputs``; checked only (deletion writes 0 in
            normalised space, i.e. the dataset mean colour).
        batch_size: perturbed images per forward pass.
        clean_probs, blurred_probs: ``(B,)`` target probabilities on ``inputs`` and on
            :func:`blurred` ``(inputs)`` (see :func:`target_probs`); when given, the ``r = 0``
            passes are skipped.

    At fraction ``r`` the selected pixels are those strictly above the map value at sorted
    position ``floor(H*W*(1-r)) - 1`` (as in RCAP), so ``r = 0`` changes nothing. Deletion sets
    them to 0 in all channels; insertion starts from the blurred image and restores them.
    """
    model = check_model(model)
    batch_size = check_batch_size(batch_size)
    steps = check_positive_int(steps, "steps")
    x, m = prepare(inputs, maps)
    b, c = x.shape[:2]
    check_normalization(normalization, c)
    if clean_probs is not None:
        clean_probs = check_probs(clean_probs, b, "clean_probs", x.device)
    if blurred_probs is not None:
        blurred_probs = check_probs(blurred_probs, b, "blurred_probs", x.device)
    base = blurred(x, kernel_size=blur_kernel, sigma=blur_sigma)
    work = curve_inputs(x, m, base, steps, clean_probs, blurred_probs)
    return work.result(perturbed_probs(model, x, target, work, batch_size))


@dataclass(frozen=True)
class CurveInputs:
    """Deletion and insertion images for a batch of maps, and what the curves need afterwards.

    ``images (B*R, C, H, W)`` image-major: per image the deletion images, then the insertion
    images (``R = per_image``). ``clean_probs``/``blurred_probs`` ``(B,)`` fill the ``r = 0``
    points that were not recomputed (``None``: recomputed).
    """

    images: Tensor
    batch: int
    steps: int
    n_del: int
    n_ins: int
    clean_probs: Tensor | None
    blurred_probs: Tensor | None

    @property
    def per_image(self) -> int:
        return self.n_del + self.n_ins

    def result(self, probs: Tensor) -> AUCResult:
        """The curves, given the target probability of each image ``(B*R,)``."""
        probs = probs.to(self.images.device).reshape(self.batch, self.per_image)
        del_curve, ins_curve = probs[:, : self.n_del], probs[:, self.n_del :]
        if self.clean_probs is not None:
            del_curve = torch.cat([self.clean_probs[:, None].to(probs.dtype), del_curve], dim=1)
        if self.blurred_probs is not None:
            ins_curve = torch.cat([self.blurred_probs[:, None].to(probs.dtype), ins_curve], dim=1)
        return AUCResult(
            deletion=del_curve,
            insertion=ins_curve,
            dauc=float(auc(del_curve.mean(dim=0))),
            iauc=float(auc(ins_curve.mean(dim=0))),
            fractions=tuple(k / self.steps for k in range(self.steps)),
        )


def curve_inputs(
    x: Tensor,
    m: Tensor,
    base: Tensor,
    steps: int,
    clean_probs: Tensor | None = None,
    blurred_probs: Tensor | None = None,
    *,
    ordered: Tensor | None = None,
) -> CurveInputs:
    """Deletion/insertion images of validated ``x (B, C, H, W)`` and maps ``m (B, H, W)``.

    ``base``: the insertion start (:func:`blurred` ``(x)``); ``ordered``: the maps'
    :func:`sorted_values` when already computed. Given ``clean_probs``/``blurred_probs``, the
    ``r = 0`` image of that curve is left out.
    """
    b, c, h, w = x.shape
    sel = above(m, thresholds(m, curve_positions(h * w, steps), ordered=ordered))[
        :, :, None
    ]  # (B, steps, 1, H, W)
    # r = 0 is the clean (deletion) / blurred (insertion) image: skip it when given.
    first_del = 0 if clean_probs is None else 1
    first_ins = 0 if blurred_probs is None else 1
    n_del, n_ins = steps - first_del, steps - first_ins
    # both kinds written in place into one tensor (no concatenated copy); only scored, never
    # differentiated: detached
    x, base = x.detach(), base.detach()
    images = x.new_empty(b, n_del + n_ins, c, h, w)
    zero = torch.zeros((), dtype=x.dtype)
    torch.where(sel[:, first_del:], zero, x[:, None], out=images[:, :n_del])
    torch.where(sel[:, first_ins:], x[:, None], base[:, None], out=images[:, n_del:])
    return CurveInputs(
        images.reshape(-1, c, h, w), b, steps, n_del, n_ins, clean_probs, blurred_probs
    )


def curve_batch(x: Tensor, m: Tensor, ordered: Tensor, context: PerturbContext) -> CurveInputs:
    """:func:`curve_inputs` in the :class:`absgrad.metrics.perturbation.Perturbation` interface
    (``context.base`` is the insertion start; :func:`blurred` ``(x)`` when not given)."""
    base = blurred(x) if context.base is None else context.base
    return curve_inputs(
        x, m, base, context.steps, context.clean_probs, context.blurred_probs, ordered=ordered
    )
