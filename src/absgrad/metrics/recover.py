"""RCAP (ReCover And Predict) of Huang & Liu 2024: higher is better."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from absgrad.metrics.forward import (
    DEFAULT_BATCH_SIZE,
    check_model,
    perturbed_probs,
)
from absgrad.metrics.grid import fraction_positions, rcap_percentiles
from absgrad.metrics.inputs import prepare
from absgrad.metrics.perturbation import PerturbContext
from absgrad.metrics.thresholds import above, thresholds
from absgrad.utils.normalization import IMAGENET, Normalization, check_normalization
from absgrad.utils.validation import check_batch_size


@dataclass(frozen=True)
class RCAPResult:
    """Per-image RCAP.

    ``score (B,)``: mean over the valid percentiles of ``hit * prob`` (0 if none is valid).
    ``hit (B, P)``: share of the map's mass in the recovered region. ``prob (B, P)``: softmax
    probability of the target on the recovered image. ``valid (B, P)``: the percentile selected
    at least one pixel. ``percentiles``: the ``P`` percentiles used.
    """

    score: Tensor
    hit: Tensor
    prob: Tensor
    valid: Tensor
    percentiles: tuple[float, ...]

    def mean(self) -> float:
        """Dataset-level RCAP: the mean score over images."""
        return float(self.score.mean())

    def details(self) -> dict[str, Tensor]:
        """The per-percentile terms stored next to the score: ``rcap_hit``, ``rcap_prob``,
        ``rcap_valid`` ``(B, P)``."""
        return {"rcap_hit": self.hit, "rcap_prob": self.prob, "rcap_valid": self.valid}


def rcap(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | list[int] | None,
    maps: Tensor,
    *,
    lower_bound: float = 0.5,
    interval: float = 0.1,
    normalization: Normalization = IMAGENET,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RCAPResult:
    """RCAP of saliency maps.

    Args:
        model: classifier returning ``(N, K)`` logits; evaluated in eval mode, its train/eval
            flags are restored afterwards.
        inputs: normalised model inputs ``(B, C, H, W)``.
        target: class per image (int, sequence or ``(B,)`` tensor); ``None`` = top-1 class.
        maps: ``(B, H, W)`` or ``(B, 1, H, W)``, non-negative (min-max scaled maps are).
        lower_bound, interval: percentiles ``P = {lower_bound, lower_bound + interval, ...} < 1``.
        normalization: ``(mean, std)`` that produced ``inputs``; black is ``(0 - mean) / std``.
        batch_size: how many recovered images go through the model at once.

    For each ``p``, ``q_p`` is the map value at ascending sorted position ``floor(H*W*p) - 1``.
    The recovered image keeps the input where ``map > q_p`` and is black (pixel value 0) elsewhere
    (de-normalise, black out, normalise again: done as one ``where`` in normalised space).
    ``hit_p = sum(map[map > q_p]) / sum(map)``, ``prob_p = softmax(f(recovered))[target]`` and the
    score is the mean of ``hit_p * prob_p`` over the percentiles.

    Ties (differs from the reference code): when 10% or more of the pixels share the maximum,
    ``map > q_p`` can select nothing. Such percentiles are left out of the mean (``valid`` is
    False; all left out gives score 0; never NaN). The reference's cumulative loop recovers the
    whole image for them instead; for maps without such a flat top both agree exactly.
    """
    model = check_model(model)
    batch_size = check_batch_size(batch_size)
    percentiles = rcap_percentiles(lower_bound, interval)
    x, m = prepare(inputs, maps, nonnegative=True)
    work = rcap_inputs(x, m, percentiles, normalization)
    return work.result(perturbed_probs(model, x, target, work, batch_size))


@dataclass(frozen=True)
class RCAPInputs:
    """RCAP's recovered images for a batch of maps, and what scoring them needs afterwards.

    ``images (B*P, C, H, W)`` image-major (all percentiles of image 0 first); ``hit`` and
    ``valid`` ``(B, P)`` as in :class:`RCAPResult`.
    """

    images: Tensor
    hit: Tensor
    valid: Tensor
    percentiles: tuple[float, ...]

    @property
    def per_image(self) -> int:
        """Recovered images per map (one per percentile)."""
        return len(self.percentiles)

    def result(self, prob: Tensor) -> RCAPResult:
        """The scores, given the target probability of each recovered image ``(B*P,)``."""
        prob = prob.reshape(self.hit.shape)
        hit = self.hit.to(prob.dtype)
        contrib = torch.where(self.valid, hit * prob, 0.0)
        score = contrib.sum(dim=1) / self.valid.sum(dim=1).clamp_min(1).to(prob.dtype)
        return RCAPResult(
            score=score, hit=hit, prob=prob, valid=self.valid, percentiles=self.percentiles
        )


def rcap_inputs(
    x: Tensor,
    m: Tensor,
    percentiles: tuple[float, ...],
    normalization: Normalization = IMAGENET,
    *,
    ordered: Tensor | None = None,
) -> RCAPInputs:
    """The recovered images of validated inputs ``x (B, C, H, W)`` and maps ``m (B, H, W)``
    (``ordered``: the maps' :func:`sorted_values` when already computed)."""
    b, c, h, w = x.shape
    mean, std = check_normalization(normalization, c)
    black = ((0.0 - mean) / std).to(device=x.device, dtype=x.dtype)  # (C, 1, 1)
    thr = thresholds(m, fraction_positions(h * w, percentiles), ordered=ordered)
    sel = above(m, thr)  # (B, P, H, W)
    valid = sel.flatten(2).any(dim=2)
    mass = m.sum(dim=(1, 2))
    kept = (m[:, None] * sel).sum(dim=(2, 3))
    hit = torch.where(mass[:, None] > 0, kept / mass.clamp_min(1e-30)[:, None], 0.0)
    recovered = torch.where(sel[:, :, None], x[:, None], black)  # (B, P, C, H, W)
    return RCAPInputs(recovered.reshape(-1, c, h, w), hit, valid, percentiles)


def recovered_batch(x: Tensor, m: Tensor, ordered: Tensor, context: PerturbContext) -> RCAPInputs:
    """:func:`rcap_inputs` in the :class:`absgrad.metrics.perturbation.Perturbation` interface."""
    return rcap_inputs(x, m, context.percentiles, context.normalization, ordered=ordered)
