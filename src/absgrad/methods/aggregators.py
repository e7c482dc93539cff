"""Aggregators: how N per-sample attributions become one.

Samples are never stacked: :class:`SampleStats` keeps, per processing, a running sum and a
running (Welford/Chan) mean and sum of squared deviations, per image. Memory is independent of N.

Which samples each statistic is over (SPEC §2.3, as the reference does it): the variance is
over the samples as the sampler produced them (for a path sampler with ``abs``: with the inner
``|g|``, before the second ``|.|`` of :mod:`absgrad.methods.processing`); the sum, which every
aggregation multiplies or divides, is over the finished samples (the second ``|.|`` applied).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from absgrad.methods.processing import PROCESSINGS, check_processing, finish_sample
from absgrad.names import AGGREGATIONS


class SampleStats:
    """Running statistics of samples ``a_i`` of shape ``(B, C, H, W)`` for several processings.

    ``add(samples, images, batch)`` takes ``{processing: (k, b, C, H, W)}``: k new samples, as
    the sampler produced them, for the images ``images`` (a slice of the batch, or the indices
    of ``b`` images). The running
    sum is over the finished samples (:func:`~absgrad.methods.processing.finish_sample`), the
    variance over the samples as given. Counts are kept per image so chunks may split the
    batch. Only the processings in ``variance_of`` (default: all) keep the mean and squared
    deviations a variance needs; the others keep their sum alone.
    """

    def __init__(
        self,
        processings: Iterable[str],
        variance_source: str = "processed",
        variance_of: Iterable[str] | None = None,
    ) -> None:
        self.processings = tuple(dict.fromkeys(check_processing(p) for p in processings))
        if variance_source not in ("raw", "processed"):
            raise ValueError("variance_source must be 'raw' or 'processed'")
        self.variance_source = variance_source
        # the processings whose variance is kept (None: all); the others keep only their sum
        self.variance_of = set(self.processings if variance_of is None else variance_of)
        unknown = self.variance_of - set(self.processings)
        if unknown:
            raise ValueError(f"variance_of names untracked processings: {sorted(unknown)}")
        self.count: Tensor | None = None
        self.sum: dict[str, Tensor] = {}
        self.mean: dict[str, Tensor] = {}
        self.m2: dict[str, Tensor] = {}

    def _init(self, like: Tensor, batch: int) -> None:
        shape = (batch, *like.shape[2:])
        z = dict(dtype=like.dtype, device=like.device)
        self.count = torch.zeros(batch, dtype=like.dtype, device=like.device)
        for p in self.processings:
            self.sum[p] = torch.zeros(shape, **z)
        for p in self.variance_of:
            self.mean[p] = torch.zeros(shape, **z)
            self.m2[p] = torch.zeros(shape, **z)

    def add(
        self, samples: dict[str, Tensor], images: slice | Tensor, batch: int, finished: bool = False
    ) -> None:
        """Fold ``k`` samples ``(k, b, C, H, W)`` per processing into the statistics of ``images``.

        ``finished``: the samples need no second ``|.|`` (no path term), so the sum takes them as
        they are."""
        first = next(iter(samples.values()))
        if self.count is None:
            self._init(first, batch)
        k = first.shape[0]
        n_a = self.count[images]
        n = n_a + k
        bshape = (-1,) + (1,) * (first.dim() - 2)
        for p in self.processings:
            s = samples[p]
            self.sum[p][images] += (s if finished else finish_sample(p, s)).sum(dim=0)
            if p not in self.variance_of:
                continue
            mean_b = s.mean(dim=0)
            m2_b = ((s - mean_b) ** 2).sum(dim=0) if k > 1 else torch.zeros_like(mean_b)
            delta = mean_b - self.mean[p][images]
            self.mean[p][images] += delta * (k / n).view(bshape)
            self.m2[p][images] += m2_b + delta**2 * (n_a * k / n).view(bshape)
        self.count[images] = n

    @property
    def n(self) -> int:
        if self.count is None:
            return 0
        return int(self.count.min())

    def variance(self, processing: str) -> Tensor:
        """Unbiased elementwise variance ``(B, C, H, W)`` over the samples as the sampler produced
        them (before the second ``|.|`` of ``abs``)."""
        if self.n < 2:
            raise ValueError(f"a variance needs at least 2 samples, got n_samples = {self.n}")
        if processing not in self.variance_of:
            raise ValueError(f"the variance of {processing!r} was not tracked (variance_of)")
        return self.m2[processing] / (self.count - 1).view(
            (-1,) + (1,) * (self.m2[processing].dim() - 1)
        )


def variance_guide(v: Tensor, percentile: float) -> Tensor:
    """The guide ``G``: 1 where ``V`` exceeds its per-image, per-channel ``percentile``-quantile, else ``V``."""
    if percentile == 0:
        return torch.ones_like(v)
    flat = v.flatten(2)
    q = linear_quantile(flat, percentile)
    return torch.where(flat > q, torch.ones_like(flat), flat).view_as(v)


def linear_quantile(flat: Tensor, q: float) -> Tensor:
    """``q``-quantile along the last dim with linear interpolation (like ``torch.quantile``,
    without its input-size limit). Returns shape ``(..., 1)``."""
    s = flat.sort(dim=-1).values
    pos = q * (s.shape[-1] - 1)
    lo = int(pos)
    hi = min(lo + 1, s.shape[-1] - 1)
    frac = pos - lo
    return (s[..., lo] + (s[..., hi] - s[..., lo]) * frac).unsqueeze(-1)


def check_percentile(p: float) -> float:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not (0 <= p < 1):
        raise ValueError(f"percentile must be a number in [0, 1), got {p!r}")
    return float(p)


def aggregate(
    stats: SampleStats, processing: str, aggregation: str, percentile: float = 0.85
) -> Tensor:
    """One attribution ``(B, C, H, W)`` from the statistics.

    ``mean``: mean of the finished samples. ``var``: the unbiased variance of the samples as the
    sampler produced them. ``guided(p)``: ``G * sum_i a_i`` (finished samples) with ``G`` from
    the variance of the raw gradients (noise sampler) or of the path's samples (path samplers,
    before the second ``|.|`` of ``abs``).
    """
    check_processing(processing)
    if aggregation == "mean":
        return stats.sum[processing] / stats.count.view(
            (-1,) + (1,) * (stats.sum[processing].dim() - 1)
        )
    if aggregation == "var":
        return stats.variance(processing)
    if aggregation == "guided":
        source = "raw" if stats.variance_source == "raw" else processing
        guide = variance_guide(stats.variance(source), check_percentile(percentile))
        return guide * stats.sum[processing]
    raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {AGGREGATIONS}")


def variance_needed(processing: str, aggregation: str, variance_source: str) -> set[str]:
    """Which processings' variance a (processing, aggregation) pair reads."""
    if aggregation == "var":
        return {processing}
    if aggregation == "guided":
        return {"raw" if variance_source == "raw" else processing}
    return set()


def needed_processings(processing: str, aggregation: str, variance_source: str) -> set[str]:
    """Which processings a (processing, aggregation) pair needs the sampler to track."""
    need = {processing}
    if aggregation == "guided" and variance_source == "raw":
        need.add("raw")
    return need


__all__ = ["AGGREGATIONS", "PROCESSINGS", "SampleStats", "aggregate", "variance_guide"]
