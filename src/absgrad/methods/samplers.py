"""Samplers: where gradients are taken, and where processing applies.

A sampler owns its loop: :meth:`Sampler.pieces` yields gradients with their path term
(:class:`Samples`, or the weighted :class:`PathPart` s of one path integral closed by a
:class:`PathEnd`), and :meth:`Sampler.run` turns them into per-sample attributions ``a_i`` (one
per processing) folded into a :class:`~absgrad.methods.aggregators.SampleStats`; no sampler
holds all N samples at once. Processing follows one rule (:mod:`absgrad.methods.processing`):
``a = q(term * p(g))``, ``p`` on each gradient before its path term and ``p``'s sample part
``q`` on the whole sample after it; a sampler whose processing applies to the product (Guided
IG's move contributions) declares ``processing_at = "product"``: ``a = q(p(term * g))``. The
sampler hands over ``term * p(g)`` (the path's sample); the statistics apply ``q`` to the sums
and take the variance guide before it (SPEC §2.3).
Samplers are plain objects with their parameters as attributes; ``key()`` identifies the
computation so that methods sharing a sampler share its samples.
"""

from __future__ import annotations

import contextlib
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
from absgrad.methods.processing import PROCESSINGS
from absgrad.methods.randomness import draw
from absgrad.params import check_fields


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
        return draw("randn", self.batch, tuple(self.x.shape[1:]), self.generators, self.x.dtype).to(
            self.x.device
        )

    def rand(self) -> Tensor:
        """One uniform [0, 1) draw per image, ``(B, C, H, W)``, from each image's generator."""
        return draw("rand", self.batch, tuple(self.x.shape[1:]), self.generators, self.x.dtype).to(
            self.x.device
        )

    def image_range(self) -> tuple[Tensor, Tensor]:
        """Per-image ``min x`` and ``max x``, each ``(B, 1, 1, 1)``."""
        flat = self.x.reshape(self.batch, -1)
        shape = (-1,) + (1,) * (self.x.dim() - 1)
        return flat.min(dim=1).values.view(shape), flat.max(dim=1).values.view(shape)


@dataclass(frozen=True)
class Samples:
    """``k`` complete samples of the images ``images``: gradients ``(k, b, C, H, W)`` and their
    path term (broadcastable to them; None: no path term)."""

    images: slice
    grad: Tensor
    term: Tensor | None = None


@dataclass(frozen=True)
class PathPart:
    """``k`` gradients ``(k, b, C, H, W)`` of one path integral of the images ``images``, with
    weights ``(k,)``: the sample sums ``weights * p(grad)`` until the next :class:`PathEnd`."""

    images: slice
    grad: Tensor
    weights: Tensor


@dataclass(frozen=True)
class PathEnd:
    """Closes the path integral of every image: its sample is ``q(term * sum of its parts)``,
    ``term`` ``(B, C, H, W)``."""

    term: Tensor


Piece = Samples | PathPart | PathEnd


def _sample(processing: str, grad: Tensor, term: Tensor | None, at: str) -> Tensor:
    """One processed sample before its sample part ``q`` (see the module docstring for the
    rule; :class:`SampleStats` applies ``q`` to the sums)."""
    p = PROCESSINGS[processing]
    if term is None:
        return p(grad)
    if at == "product":
        return p(term * grad)
    return p(grad) * term


@dataclass
class Sampler:
    """Base class. Subclasses set ``name`` (and ``variance_source``, ``processing_at`` when
    they differ) and implement :meth:`pieces`."""

    name: ClassVar[str] = "sampler"
    #: the guide's variance is over ``raw`` gradients or over the ``processed`` samples
    variance_source: ClassVar[str] = "processed"
    #: where processing applies: to each ``gradient`` before its path term, or to the ``product``
    processing_at: ClassVar[str] = "gradient"

    def __post_init__(self) -> None:
        check_fields(self)  # every parameter's rule, from the one table in utils.params

    def key(self) -> tuple:
        """Hashable identity of the computation (sampler name and parameters)."""
        vals = []
        for k, v in sorted(vars(self).items()):
            if isinstance(v, Tensor):
                v = (
                    "tensor",
                    tuple(v.shape),
                    float(v.double().sum()),
                    float(v.double().abs().sum()),
                )
            vals.append((k, v))
        return (self.name, tuple(vals))

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, ctx: GradContext, stats: SampleStats) -> None:
        """Fold every sample of :meth:`pieces` into ``stats``, processed by the rule."""
        partial: dict[str, Tensor] = {}
        with contextlib.closing(self.pieces(ctx)) as pieces:  # closed (hooks removed) on error
            for piece in pieces:
                self._fold(piece, ctx, stats, partial)

    def _fold(
        self, piece: Piece, ctx: GradContext, stats: SampleStats, partial: dict[str, Tensor]
    ) -> None:
        """Fold one piece: complete samples go to ``stats``; path parts add to ``partial``
        (per processing, ``(B, C, H, W)``) until their :class:`PathEnd`."""
        procs = stats.processings
        if isinstance(piece, Samples):
            samples = {p: _sample(p, piece.grad, piece.term, self.processing_at) for p in procs}
            # no path term: the sample part changes nothing, so the sums take the samples as is
            stats.add(samples, piece.images, ctx.batch, finished=piece.term is None)
        elif isinstance(piece, PathPart):
            w = piece.weights.view((-1,) + (1,) * (piece.grad.dim() - 1))
            for p in procs:
                part = partial.setdefault(p, torch.zeros_like(ctx.x))
                part[piece.images] += (w * PROCESSINGS[p](piece.grad)).sum(dim=0)
        else:
            # one sample (1, B, C, H, W) per image: term * sum_k w_k p(g_k) (q applied to the sums)
            stats.add(
                {p: (piece.term * partial[p]).unsqueeze(0) for p in procs},
                slice(0, ctx.batch),
                ctx.batch,
            )
            partial.clear()


@dataclass
class SingleSampler(Sampler):
    """One gradient at ``x`` (Vanilla Gradient)."""

    name: ClassVar[str] = "single"

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        for imgs in image_slices(ctx.batch, ctx.batch_size):
            yield Samples(imgs, ctx.grad(ctx.x[imgs].unsqueeze(0), imgs))


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

    def _draw(self, ctx: GradContext, ids: range) -> Tensor:
        if self.noise is not None:
            return self.noise[ids.start : ids.stop].to(ctx.x)
        lo, hi = ctx.image_range()
        sigma = self.spread * (hi - lo)
        # One draw per sample index and image, so the noise does not depend on the chunking.
        return torch.stack([ctx.randn() for _ in ids]) * sigma

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        if self.noise is not None and (
            self.noise.dim() != 5
            or self.noise.shape[0] != self.n_samples
            or self.noise.shape[1:] != ctx.x.shape
        ):
            raise ValueError(
                f"noise must have shape (n_samples, B, C, H, W) = ({self.n_samples}, "
                f"{', '.join(map(str, ctx.x.shape))}), got {tuple(self.noise.shape)}"
            )
        for ids in unit_groups(self.n_samples, ctx.batch, ctx.batch_size):
            eps = self._draw(ctx, ids)
            for imgs in image_slices(ctx.batch, ctx.batch_size):
                yield Samples(imgs, ctx.grad(ctx.x[imgs].unsqueeze(0) + eps[:, imgs], imgs))


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

    def _baseline(self, ctx: GradContext, t: int) -> Tensor:
        if self.baselines is None:
            lo, hi = ctx.image_range()
            return lo + (hi - lo) * ctx.rand()
        b = torch.as_tensor(self.baselines, dtype=ctx.x.dtype, device=ctx.x.device)
        if b.dim() == 5:
            b = b[t]
        return b.expand_as(ctx.x)

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        alphas, weights = path_rule(self.steps, self.rule)
        alphas, weights = alphas.to(ctx.x), weights.to(ctx.x)
        shape = (-1,) + (1,) * ctx.x.dim()
        for t in range(self.n_samples):
            base = self._baseline(ctx, t)
            diff = ctx.x - base
            for ids in unit_groups(self.steps, ctx.batch, ctx.batch_size):
                a = alphas[ids.start : ids.stop].view(shape)
                points = base.unsqueeze(0) + a * diff.unsqueeze(0)
                for imgs in image_slices(ctx.batch, ctx.batch_size):
                    g = ctx.grad(points[:, imgs], imgs)
                    yield PathPart(imgs, g, weights[ids.start : ids.stop])
            yield PathEnd(diff)


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

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
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
                yield Samples(imgs, ctx.grad(points[:, imgs], imgs), term[:, imgs])


def _l1(a: Tensor) -> Tensor:
    return a.abs().sum()


def _smallest_fraction(work: Tensor, kth: int) -> Tensor:
    """The features whose ``|work|`` is at most its ``kth`` smallest value, ignoring infinities
    (the reference's 'lower' quantile of ``fraction``)."""
    mag = work.abs().flatten()
    threshold = mag.kthvalue(kth).values
    return ((mag <= threshold) & torch.isfinite(mag)).view_as(work)


@dataclass
class _GuidedPath:
    """One image's Guided IG path from ``base`` to ``x`` (each ``(1, C, H, W)``)."""

    x: Tensor
    base: Tensor
    kth: int  # how many features a round may pick (the fraction's 'lower' quantile)

    def __post_init__(self) -> None:
        self.diff = self.x - self.base
        self.l1_total = _l1(self.diff)

    def position(self, cur: Tensor, where_fixed: float) -> Tensor:
        """Each feature's ``alpha`` on the straight path (``where_fixed`` where its length is 0)."""
        diff = self.diff
        safe = torch.where(diff != 0, diff, torch.ones_like(diff))
        return torch.where(diff != 0, (cur - self.base) / safe, torch.full_like(diff, where_fixed))

    def at(self, alpha: float) -> Tensor:
        """The straight-path point at ``alpha``."""
        return self.base + alpha * self.diff

    def round(
        self, cur: Tensor, work: Tensor, band: tuple[float, float], target: Tensor
    ) -> tuple[Tensor, bool]:
        """One round of moves: lift features below the band to its lower edge, then move the
        features with the smallest ``|g|`` toward the upper edge until the L1 distance to ``x``
        is ``target``; ``work`` marks finished features with infinity (in place). Returns the
        new point and whether the step needs another round."""
        a_min, a_max = band
        x_min, x_max = self.at(a_min), self.at(a_max)
        cur = torch.where(self.position(cur, a_max) < a_min, x_min, cur)
        l1_cur = _l1(cur - self.x)
        if float((l1_cur - target).abs()) <= 1e-9 + 1e-6 * float(target.abs()):
            return cur, False
        work.masked_fill_(cur == x_max, math.inf)
        sel = _smallest_fraction(work, self.kth)
        l1_sel = _l1((cur - x_max) * sel)
        if float(l1_sel) <= 0:
            return cur, False
        gamma = float((l1_cur - target) / l1_sel)
        if gamma > 1:
            return torch.where(sel, x_max, cur), True
        return torch.where(sel, cur + gamma * (x_max - cur), cur), False


@dataclass
class GuidedPathSampler(Sampler):
    """Guided IG (Kapishnikov et al. 2021); each **round** of moves is one sample.

    From the all-zeros baseline (the mean colour in normalised space), each of ``n_samples``
    steps moves the features with the smallest ``|g|`` (``fraction`` per round) until the L1
    distance to ``x`` meets the schedule, within ``max_dist`` of the straight path. A step
    may take several rounds; every round's contribution ``(x_new - x_old) * g`` is a sample
    (so one image may have more samples than another); processing applies to the contribution.
    Each image follows its own path with its own model calls, so batching cannot change its
    path decisions.
    """

    name: ClassVar[str] = "guided_path"
    processing_at: ClassVar[str] = "product"
    n_samples: int = 20
    fraction: float = 0.25
    max_dist: float = 0.1

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        for i in range(ctx.batch):
            yield from self.rounds(ctx, slice(i, i + 1))

    def band(self, step: int) -> tuple[float, float]:
        """The allowed range of ``alpha`` after step ``step``: ``max_dist`` around the schedule."""
        alpha = (step + 1.0) / self.n_samples
        return max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0)

    def rounds(self, ctx: GradContext, img: slice) -> Iterator[Samples]:
        """Every round of every step of one image: ``Samples`` of ``(1, 1, C, H, W)``."""
        x = ctx.x[img]
        path = _GuidedPath(
            x, torch.zeros_like(x), int(math.floor(self.fraction * (x.numel() - 1))) + 1
        )
        if float(path.l1_total) <= 1e-9:  # x is the baseline: nothing moves, one zero per step
            for _ in range(self.n_samples):
                yield Samples(img, torch.zeros_like(x).unsqueeze(0))
            return
        cur = path.base.clone()
        for step in range(self.n_samples):
            g = ctx.grad(cur.unsqueeze(0), img)[0]
            target = path.l1_total * (1 - (step + 1.0) / self.n_samples)
            work, more = g.clone(), True
            while more:
                new, more = path.round(cur, work, self.band(step), target)
                yield Samples(img, g.unsqueeze(0), (new - cur).unsqueeze(0))
                cur = new


__all__ = [
    "BlurPathSampler",
    "GradContext",
    "GuidedPathSampler",
    "NoiseSampler",
    "PathEnd",
    "PathPart",
    "Piece",
    "Sampler",
    "Samples",
    "SingleSampler",
    "StraightPathSampler",
    "path_rule",
]
