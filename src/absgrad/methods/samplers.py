"""Samplers: where gradients are taken (SPEC §2.1).

A sampler feeds per-sample attributions ``a_i`` (one per processing) into a
:class:`~absgrad.methods.aggregators.SampleStats`; it never holds all N samples at once.
Samplers are plain objects with their parameters as attributes; ``key()`` identifies the
computation so that methods sharing a sampler share its samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from absgrad.methods.aggregators import SampleStats
from absgrad.methods.blur import gaussian_blur
from absgrad.methods.chunking import image_slices, unit_groups
from absgrad.methods.gradients import input_gradient
from absgrad.methods.params import check_fields
from absgrad.methods.processing import PROCESSINGS


@dataclass
class GradContext:
    """What every sampler needs: model, inputs ``(B, C, H, W)``, targets ``(B,)`` and settings."""

    model: nn.Module
    x: Tensor
    target: Tensor
    objective: str = "logit"
    batch_size: int = 4
    generator: torch.Generator | None = None

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    def grad(self, points: Tensor, images: slice) -> Tensor:
        """Gradients at ``points (k, b, C, H, W)`` for the images ``images``: ``(k, b, C, H, W)``."""
        k, b = points.shape[:2]
        t = self.target[images].repeat(k)
        g = input_gradient(self.model, points.reshape(k * b, *points.shape[2:]), t, self.objective)
        return g.view(points.shape)

    def randn(self, shape: tuple[int, ...]) -> Tensor:
        # Drawn on the CPU so that a seed gives the same noise on every device.
        return torch.randn(shape, generator=self.generator, dtype=self.x.dtype).to(self.x.device)

    def rand(self, shape: tuple[int, ...]) -> Tensor:
        return torch.rand(shape, generator=self.generator, dtype=self.x.dtype).to(self.x.device)


def _processed(g: Tensor, processings: tuple[str, ...], times: Tensor | None = None) -> dict[str, Tensor]:
    """``{p: times * p(g)}`` for each processing (``times`` = the path term, or none)."""
    out = {}
    for p in processings:
        v = PROCESSINGS[p](g)
        out[p] = v if times is None else v * times
    return out


@dataclass
class Sampler:
    """Base class. Subclasses set ``name``, ``variance_source`` and implement :meth:`run`."""

    name: ClassVar[str] = "sampler"
    variance_source: ClassVar[str] = "processed"

    def __post_init__(self) -> None:
        check_fields(self)  # every parameter's rule, from the one table in methods.params

    def key(self) -> tuple:
        """Hashable identity of the computation (sampler name and parameters)."""
        vals = []
        for k, v in sorted(vars(self).items()):
            if isinstance(v, Tensor):
                v = ("tensor", tuple(v.shape), float(v.double().sum()), float(v.double().abs().sum()))
            vals.append((k, v))
        return (self.name, tuple(vals))

    @property
    def n_passes(self) -> int:
        """Forward+backward passes per image."""
        return 1

    def run(self, ctx: GradContext, stats: SampleStats) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class SingleSampler(Sampler):
    """One gradient at ``x`` (Vanilla Gradient)."""

    name: ClassVar[str] = "single"

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        for imgs in image_slices(ctx.batch, ctx.batch_size):
            g = ctx.grad(ctx.x[imgs].unsqueeze(0), imgs)
            stats.add(_processed(g, stats.processings), imgs, ctx.batch)


@dataclass
class NoiseSampler(Sampler):
    """Gradients at ``x + e_i``, ``e_i ~ N(0, s^2)``, ``s = spread * (max x - min x)`` over the batch.

    ``noise`` ``(N, B, C, H, W)``, when given, replaces the random draw (it is used as is).
    """

    name: ClassVar[str] = "noise"
    variance_source: ClassVar[str] = "raw"
    n_samples: int = 20
    spread: float = 0.15
    noise: Tensor | None = field(default=None, repr=False)

    @property
    def n_passes(self) -> int:
        return self.n_samples

    def _draw(self, ctx: GradContext, ids: range) -> Tensor:
        if self.noise is not None:
            return self.noise[ids.start : ids.stop].to(ctx.x)
        sigma = self.spread * (ctx.x.max() - ctx.x.min())
        # One draw per sample index, so the noise does not depend on the chunking.
        return torch.stack([ctx.randn(tuple(ctx.x.shape)) for _ in ids]) * sigma

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        if self.noise is not None and (
            self.noise.dim() != 5 or self.noise.shape[0] != self.n_samples or self.noise.shape[1:] != ctx.x.shape
        ):
            raise ValueError(
                f"noise must have shape (n_samples, B, C, H, W) = ({self.n_samples}, "
                f"{', '.join(map(str, ctx.x.shape))}), got {tuple(self.noise.shape)}"
            )
        for ids in unit_groups(self.n_samples, ctx.batch, ctx.batch_size):
            eps = self._draw(ctx, ids)
            for imgs in image_slices(ctx.batch, ctx.batch_size):
                g = ctx.grad(ctx.x[imgs].unsqueeze(0) + eps[:, imgs], imgs)
                stats.add(_processed(g, stats.processings), imgs, ctx.batch)


def path_rule(steps: int, rule: str) -> tuple[Tensor, Tensor]:
    """Points ``alpha_k`` and weights ``w_k`` on [0, 1] for a straight-path integral.

    ``mean`` (the reference): ``k/(m-1)``, k = 0..m-1, equal weights ``1/m``. ``trapezoid``,
    ``left``, ``right``, ``middle``: the Riemann rules (Captum's ``riemann_*``).
    """
    m = steps
    if rule == "mean":
        a = torch.linspace(0, 1, m) if m > 1 else torch.ones(1)
        return a, torch.full((m,), 1.0 / m)
    if rule == "trapezoid":
        if m < 2:
            raise ValueError("the trapezoid rule needs steps >= 2")
        w = torch.full((m,), 1.0 / (m - 1))
        w[0] = w[-1] = 0.5 / (m - 1)
        return torch.linspace(0, 1, m), w
    if rule in ("left", "right", "middle"):
        offset = {"left": 0.0, "right": 1.0, "middle": 0.5}[rule]
        return (torch.arange(m) + offset) / m, torch.full((m,), 1.0 / m)
    raise ValueError(f"unknown rule {rule!r}; choose mean, trapezoid, left, right or middle")


@dataclass
class StraightPathSampler(Sampler):
    """Integrated Gradients with random uniform baselines; the samples are the trials.

    Trial ``t``: ``b_t ~ U(min x, max x)`` elementwise (or the given ``baselines``), sample
    ``(x - b_t) * sum_k w_k p(g(b_t + alpha_k (x - b_t)))`` with ``steps`` points.
    ``baselines``: ``(N, B, C, H, W)``, ``(B, C, H, W)``, ``(C, H, W)`` or a number.
    """

    name: ClassVar[str] = "straight_path"
    n_samples: int = 2
    steps: int = 5
    rule: str = "mean"
    baselines: Tensor | float | None = field(default=None, repr=False)

    @property
    def n_passes(self) -> int:
        return self.n_samples * self.steps

    def _baseline(self, ctx: GradContext, t: int) -> Tensor:
        if self.baselines is None:
            lo, hi = ctx.x.min(), ctx.x.max()
            return lo + (hi - lo) * ctx.rand(tuple(ctx.x.shape))
        b = torch.as_tensor(self.baselines, dtype=ctx.x.dtype, device=ctx.x.device)
        if b.dim() == 5:
            b = b[t]
        return b.expand_as(ctx.x)

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        alphas, weights = path_rule(self.steps, self.rule)
        alphas, weights = alphas.to(ctx.x), weights.to(ctx.x)
        shape = (-1,) + (1,) * ctx.x.dim()
        for t in range(self.n_samples):
            base = self._baseline(ctx, t)
            diff = ctx.x - base
            partial = {p: torch.zeros_like(ctx.x) for p in stats.processings}
            for ids in unit_groups(self.steps, ctx.batch, ctx.batch_size):
                a = alphas[ids.start : ids.stop].view(shape)
                w = weights[ids.start : ids.stop].view(shape)
                points = base.unsqueeze(0) + a * diff.unsqueeze(0)
                for imgs in image_slices(ctx.batch, ctx.batch_size):
                    g = ctx.grad(points[:, imgs], imgs)
                    for p in stats.processings:
                        partial[p][imgs] += (w * PROCESSINGS[p](g)).sum(dim=0)
            sample = {p: (diff * partial[p]).unsqueeze(0) for p in stats.processings}
            stats.add(sample, slice(0, ctx.batch), ctx.batch)


@dataclass
class BlurPathSampler(Sampler):
    """BlurIG: ``n_samples`` steps along the Gaussian scale-space path up to ``max_sigma``.

    Sample k: ``(s_{k+1} - s_k) * p(g(blur(x, s_k))) * (blur(x, s_k + d) - blur(x, s_k)) / d``.
    """

    name: ClassVar[str] = "blur_path"
    n_samples: int = 20
    max_sigma: float = 50.0
    grad_step: float = 0.01
    kernel_size: int = 41

    @property
    def n_passes(self) -> int:
        return self.n_samples

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        n = self.n_samples
        sigmas = [k * self.max_sigma / n for k in range(n + 1)]
        for ids in unit_groups(n, ctx.batch, ctx.batch_size):
            pts, terms = [], []
            for k in ids:
                xb = gaussian_blur(ctx.x, sigmas[k], self.kernel_size)
                xd = gaussian_blur(ctx.x, sigmas[k] + self.grad_step, self.kernel_size)
                pts.append(xb)
                terms.append((sigmas[k + 1] - sigmas[k]) * (xd - xb) / self.grad_step)
            points, term = torch.stack(pts), torch.stack(terms)
            for imgs in image_slices(ctx.batch, ctx.batch_size):
                g = ctx.grad(points[:, imgs], imgs)
                stats.add(_processed(g, stats.processings, term[:, imgs]), imgs, ctx.batch)


@dataclass
class GuidedPathSampler(Sampler):
    """Guided IG (Kapishnikov et al. 2021), batched over images; samples are per-step contributions.

    From the all-zeros baseline (the mean colour in normalised space), each of ``n_samples``
    steps moves the features with the smallest ``|g|`` (``fraction`` per round) until the L1
    distance to ``x`` meets the schedule, within ``max_dist`` of the straight path.
    """

    name: ClassVar[str] = "guided_path"
    n_samples: int = 20
    fraction: float = 0.25
    max_dist: float = 0.1

    @property
    def n_passes(self) -> int:
        return self.n_samples

    def _full_grad(self, ctx: GradContext, point: Tensor) -> Tensor:
        out = torch.empty_like(point)
        for imgs in image_slices(ctx.batch, ctx.batch_size):
            out[imgs] = ctx.grad(point[imgs].unsqueeze(0), imgs)[0]
        return out

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        x = ctx.x
        b = x.shape[0]
        base = torch.zeros_like(x)
        diff = x - base
        flat = (b, -1)
        l1_total = diff.abs().reshape(flat).sum(1)
        cur = base.clone()
        n_feat = x[0].numel()
        kth = int(math.floor(self.fraction * (n_feat - 1))) + 1
        for step in range(self.n_samples):
            g = self._full_grad(ctx, cur)
            alpha = (step + 1.0) / self.n_samples
            a_min, a_max = max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0)
            x_min, x_max = base + a_min * diff, base + a_max * diff
            l1_target = l1_total * (1 - alpha)
            work = g.clone()
            start = cur.clone()
            active = l1_total > 1e-9
            while bool(active.any()):
                am = active.view(-1, 1, 1, 1)
                with torch.no_grad():
                    x_alpha = torch.where(diff != 0, (cur - base) / torch.where(diff != 0, diff, 1), a_max)
                    cur = torch.where(am & (x_alpha < a_min), x_min, cur)
                    l1_cur = (cur - x).abs().reshape(flat).sum(1)
                    close = (l1_cur - l1_target).abs() <= 1e-9 + 1e-6 * l1_target.abs()
                    active = active & ~close
                    am = active.view(-1, 1, 1, 1)
                    work = torch.where(cur == x_max, torch.full_like(work, math.inf), work)
                    mag = work.abs().reshape(flat)
                    thr = mag.kthvalue(kth, dim=1).values.view(-1, 1)
                    sel = ((mag <= thr) & torch.isfinite(mag)).view_as(x) & am
                    l1_s = ((cur - x_max).abs() * sel).reshape(flat).sum(1)
                    gamma = torch.where(l1_s > 0, (l1_cur - l1_target) / torch.where(l1_s > 0, l1_s, 1), math.inf)
                    full = (gamma > 1).view(-1, 1, 1, 1)
                    moved = torch.where(full, x_max, cur + gamma.clamp(max=1).view(-1, 1, 1, 1) * (x_max - cur))
                    cur = torch.where(sel, moved, cur)
                    active = active & (gamma > 1) & (l1_s > 0)
            contrib = (cur - start) * g
            stats.add(_processed(contrib.unsqueeze(0), stats.processings), slice(0, b), b)


__all__ = [
    "BlurPathSampler",
    "GradContext",
    "GuidedPathSampler",
    "NoiseSampler",
    "Sampler",
    "SingleSampler",
    "StraightPathSampler",
    "path_rule",
]
