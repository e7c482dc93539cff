"""Samplers: where gradients are taken (SPEC §2.1).

A sampler feeds per-sample attributions ``a_i`` (one per processing) into a
:class:`~absgrad.methods.aggregators.SampleStats`; it never holds all N samples at once.
Samplers are plain objects with their parameters as attributes; ``key()`` identifies the
computation so that methods sharing a sampler share its samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from absgrad.methods.aggregators import SampleStats
from absgrad.methods.blur import gaussian_blur
from absgrad.methods.chunking import image_slices, unit_groups
from absgrad.methods.gradients import input_gradient
from absgrad.methods.processing import PROCESSINGS, finish_sample
from absgrad.methods.randomness import draw


@dataclass
class GradContext:
    """What every sampler needs: model, inputs ``(B, C, H, W)``, targets ``(B,)`` and settings.

    ``generators``: one CPU generator per image (see :mod:`absgrad.methods.randomness`), or
    None for the global generator; every random draw is taken image by image from them.
    """

    model: nn.Module
    x: Tensor
    target: Tensor
    objective: str = "logit"
    batch_size: int = 4
    generators: list[torch.Generator] | None = None

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    def grad(self, points: Tensor, images: slice) -> Tensor:
        """Gradients at ``points (k, b, C, H, W)`` for the images ``images``: ``(k, b, C, H, W)``."""
        k, b = points.shape[:2]
        t = self.target[images].repeat(k)
        g = input_gradient(self.model, points.reshape(k * b, *points.shape[2:]), t, self.objective)
        return g.view(points.shape)

    def randn(self) -> Tensor:
        """One standard normal draw per image, ``(B, C, H, W)``, from each image's generator."""
        return draw("randn", self.batch, tuple(self.x.shape[1:]), self.generators, self.x.dtype).to(self.x.device)

    def rand(self) -> Tensor:
        """One uniform [0, 1) draw per image, ``(B, C, H, W)``, from each image's generator."""
        return draw("rand", self.batch, tuple(self.x.shape[1:]), self.generators, self.x.dtype).to(self.x.device)

    def image_range(self) -> tuple[Tensor, Tensor]:
        """Per-image ``min x`` and ``max x``, each ``(B, 1, 1, 1)``."""
        flat = self.x.reshape(self.batch, -1)
        shape = (-1,) + (1,) * (self.x.dim() - 1)
        return flat.min(dim=1).values.view(shape), flat.max(dim=1).values.view(shape)


def _processed(g: Tensor, processings: tuple[str, ...], times: Tensor | None = None) -> dict[str, Tensor]:
    """``{p: finish(times * p(g))}`` for each processing (``times`` = the path term, or none)."""
    out = {}
    for p in processings:
        v = PROCESSINGS[p](g)
        out[p] = v if times is None else finish_sample(p, v * times)
    return out


@dataclass
class Sampler:
    """Base class. Subclasses set ``name``, ``variance_source`` and implement :meth:`run`."""

    name: ClassVar[str] = "sampler"
    variance_source: ClassVar[str] = "processed"

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
    """Gradients at ``x + e_i``, ``e_i ~ N(0, s^2)``, ``s = spread * (max x - min x)`` per image.

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
        lo, hi = ctx.image_range()
        sigma = self.spread * (hi - lo)
        # One draw per sample index and image, so the noise does not depend on the chunking.
        return torch.stack([ctx.randn() for _ in ids]) * sigma

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

    Trial ``t``: ``b_t ~ U(min x, max x)`` elementwise, per image (or the given ``baselines``),
    sample ``q((x - b_t) * sum_k w_k p(g(b_t + alpha_k (x - b_t))))`` with ``steps`` points
    (``q``: the processing's sample part, ``|.|`` for ``abs``).
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
            lo, hi = ctx.image_range()
            return lo + (hi - lo) * ctx.rand()
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
            sample = {p: finish_sample(p, diff * partial[p]).unsqueeze(0) for p in stats.processings}
            stats.add(sample, slice(0, ctx.batch), ctx.batch)


@dataclass
class BlurPathSampler(Sampler):
    """BlurIG: ``n_samples`` steps along the Gaussian scale-space path up to ``max_sigma``.

    Sample k: ``q((s_{k+1} - s_k) * p(g(blur(x, s_k))) * (blur(x, s_k + d) - blur(x, s_k)) / d)``
    (``q``: the processing's sample part, ``|.|`` for ``abs``).
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


def _path_position(cur: Tensor, base: Tensor, diff: Tensor, where_fixed: float) -> Tensor:
    """Each feature's position ``alpha`` on the straight path from ``base`` (``where_fixed`` for
    features whose path has length 0)."""
    safe = torch.where(diff != 0, diff, torch.ones_like(diff))
    return torch.where(diff != 0, (cur - base) / safe, torch.full_like(diff, where_fixed))


def _smallest_fraction(work: Tensor, kth: int) -> Tensor:
    """The features whose ``|work|`` is at most its ``kth`` smallest value, ignoring infinities
    (the reference's 'lower' quantile of ``fraction``)."""
    mag = work.abs().flatten()
    threshold = mag.kthvalue(kth).values
    return ((mag <= threshold) & torch.isfinite(mag)).view_as(work)


def _l1(a: Tensor) -> Tensor:
    return a.abs().sum()


@dataclass
class GuidedPathSampler(Sampler):
    """Guided IG (Kapishnikov et al. 2021); each **round** of moves is one sample.

    From the all-zeros baseline (the mean colour in normalised space), each of ``n_samples``
    steps moves the features with the smallest ``|g|`` (``fraction`` per round) until the L1
    distance to ``x`` meets the schedule, within ``max_dist`` of the straight path. A step
    may take several rounds; every round's contribution ``(x_new - x_old) * g`` is a sample
    (so one image may have more samples than another). Each image follows its own path with
    its own model calls, so batching cannot change its path decisions.
    """

    name: ClassVar[str] = "guided_path"
    n_samples: int = 20
    fraction: float = 0.25
    max_dist: float = 0.1

    @property
    def n_passes(self) -> int:
        return self.n_samples

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        for i in range(ctx.batch):
            img = slice(i, i + 1)
            for contribution in self.rounds(ctx, img):
                stats.add(_processed(contribution.unsqueeze(0), stats.processings), img, ctx.batch)

    def rounds(self, ctx: GradContext, img: slice) -> Iterator[Tensor]:
        """The contributions ``(1, C, H, W)`` of every round of every step for one image."""
        x = ctx.x[img]
        base = torch.zeros_like(x)
        diff = x - base
        l1_total = _l1(diff)
        if float(l1_total) <= 1e-9:  # x is the baseline: nothing moves, one zero per step
            for _ in range(self.n_samples):
                yield torch.zeros_like(x)
            return
        kth = int(math.floor(self.fraction * (x.numel() - 1))) + 1
        cur = base.clone()
        for step in range(self.n_samples):
            g = ctx.grad(cur.unsqueeze(0), img)[0]
            alpha = (step + 1.0) / self.n_samples
            bounds = (max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0))
            target = l1_total * (1 - alpha)
            work = g.clone()
            more = True
            while more:
                new, more = self._round(cur, work, x, base, diff, bounds, target, kth)
                yield (new - cur) * g
                cur = new

    @staticmethod
    def _round(
        cur: Tensor,
        work: Tensor,
        x: Tensor,
        base: Tensor,
        diff: Tensor,
        bounds: tuple[float, float],
        target: Tensor,
        kth: int,
    ) -> tuple[Tensor, bool]:
        """One round of moves: lift laggards to the band's lower edge, then move the features
        with the smallest ``|g|`` toward the upper edge; ``work`` marks finished features with
        infinity (in place). Returns the new point and whether the step needs another round."""
        a_min, a_max = bounds
        x_min, x_max = base + a_min * diff, base + a_max * diff
        cur = torch.where(_path_position(cur, base, diff, a_max) < a_min, x_min, cur)
        l1_cur = _l1(cur - x)
        if float((l1_cur - target).abs()) <= 1e-9 + 1e-6 * float(target.abs()):
            return cur, False
        work.masked_fill_(cur == x_max, math.inf)
        sel = _smallest_fraction(work, kth)
        l1_sel = _l1((cur - x_max) * sel)
        if float(l1_sel) <= 0:
            return cur, False
        gamma = float((l1_cur - target) / l1_sel)
        if gamma > 1:
            return torch.where(sel, x_max, cur), True
        return torch.where(sel, cur + gamma * (x_max - cur), cur), False


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
