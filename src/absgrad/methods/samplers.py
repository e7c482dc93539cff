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
    """``k`` complete samples of the images ``images`` (a slice of the batch, or the ``(b,)``
    indices of images that need not be consecutive): gradients ``(k, b, C, H, W)`` and their
    path term (broadcastable to them; None: no path term)."""

    images: slice | Tensor
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
                w = v.detach().cpu().double()  # on the CPU: MPS has no float64
                v = ("tensor", tuple(v.shape), float(w.sum()), float(w.abs().sum()))
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
    """Each image's L1 norm ``(b,)`` of ``a (b, C, H, W)``, in ``a``'s dtype.

    Accumulated in float64 (MPS lacks it: float32 there), so that the rounded sum does not
    depend on how the reduction is split, which may vary with the number of images; the
    reference's path arithmetic is float64 throughout."""
    wide = a.dtype if a.device.type == "mps" else torch.float64
    return a.abs().flatten(1).sum(dim=1, dtype=wide).to(a.dtype)


def _smallest_fraction(work: Tensor, kth: int) -> Tensor:
    """Per image of ``work (b, C, H, W)``: the features whose ``|work|`` is at most the image's
    ``kth`` smallest value, ignoring infinities (the reference's 'lower' quantile of
    ``fraction``). A threshold on values, so ties are all in or all out on any device."""
    mag = work.abs().flatten(1)
    threshold = mag.kthvalue(kth, dim=1, keepdim=True).values
    return ((mag <= threshold) & torch.isfinite(mag)).view_as(work)


def _per_image(v: Tensor) -> Tensor:
    """``(b,)`` -> ``(b, 1, 1, 1)``, to scale each image's features."""
    return v.view(-1, 1, 1, 1)


def _rows(mask: Tensor) -> slice | Tensor:
    """The images of a ``(B,)`` bool mask: a slice when they are consecutive (views, no
    copies), else their indices."""
    idx = mask.nonzero().flatten().cpu()
    if not len(idx):
        return slice(0, 0)
    if int(idx[-1]) - int(idx[0]) + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx.to(mask.device)


def _count(rows: slice | Tensor) -> int:
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


@dataclass
class _GuidedPaths:
    """The Guided IG paths of a batch from ``base`` to ``x`` (each ``(B, C, H, W)``); every
    per-image quantity (L1 distances, threshold, gamma, whether to go on) is its own."""

    x: Tensor
    base: Tensor
    kth: int  # how many features a round may pick (the fraction's 'lower' quantile)

    def __post_init__(self) -> None:
        self.diff = self.x - self.base
        self.l1_total = _l1(self.diff)

    def round(
        self,
        rows: slice | Tensor,
        cur: Tensor,
        work: Tensor,
        band: tuple[float, float],
        target: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """One round of moves of the images ``rows`` at ``cur (b, C, H, W)``: lift features
        below the band to its lower edge, then move the features with the smallest ``|g|``
        toward the upper edge until each image's L1 distance to ``x`` is its ``target (b,)``.
        ``work`` (the batch's ``(B, C, H, W)``) marks finished features with infinity. Returns
        the new points and which images need another round of this step ``(b,)``."""
        a_min, a_max = band
        base, diff = self.base[rows], self.diff[rows]
        x_min, x_max = base + a_min * diff, base + a_max * diff
        safe = torch.where(diff != 0, diff, torch.ones_like(diff))
        alpha = torch.where(diff != 0, (cur - base) / safe, torch.full_like(diff, a_max))
        cur = torch.where(alpha < a_min, x_min, cur)
        l1_cur = _l1(cur - self.x[rows])
        # the reference's isclose, with a tolerance for float32 (compared in float64)
        wide = torch.float32 if target.device.type == "mps" else torch.float64
        reached = (l1_cur - target).to(wide).abs() <= 1e-9 + 1e-6 * target.to(wide).abs()
        w = work[rows].masked_fill_(cur == x_max, math.inf)
        if not isinstance(rows, slice):
            work[rows] = w  # an index gathers a copy: write the marks back
        sel = _smallest_fraction(w, self.kth)
        l1_sel = _l1((cur - x_max) * sel)
        moving = ~reached & (l1_sel > 0)
        gamma = (l1_cur - target) / torch.where(moving, l1_sel, torch.ones_like(l1_sel))
        whole = moving & (gamma > 1)  # the selection cannot close the gap: all the way, again
        part = moving & ~whole
        moved = torch.where(_per_image(whole), x_max, cur + _per_image(gamma) * (x_max - cur))
        new = torch.where(sel & _per_image(whole | part), moved, cur)
        return new, whole


@dataclass
class GuidedPathSampler(Sampler):
    """Guided IG (Kapishnikov et al. 2021); each **round** of moves is one sample.

    From the all-zeros baseline (the mean colour in normalised space), each of ``n_samples``
    steps moves the features with the smallest ``|g|`` (``fraction`` per round) until the L1
    distance to ``x`` meets the schedule, within ``max_dist`` of the straight path. A step
    may take several rounds; every round's contribution ``(x_new - x_old) * g`` is a sample
    (so one image may have more samples than another); processing applies to the contribution.
    The images of the batch step together, each with its own path decisions: one gradient per
    image at the start of each step, in model calls of exactly ``batch_size`` images (a short
    chunk is padded, so rounding cannot depend on the batch), then rounds until every image
    has met its own target; an image that has met it waits for the next step.
    """

    name: ClassVar[str] = "guided_path"
    processing_at: ClassVar[str] = "product"
    n_samples: int = 20
    fraction: float = 0.25
    max_dist: float = 0.1

    def band(self, step: int) -> tuple[float, float]:
        """The allowed range of ``alpha`` after step ``step``: ``max_dist`` around the schedule."""
        alpha = (step + 1.0) / self.n_samples
        return max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0)

    def pieces(self, ctx: GradContext) -> Iterator[Piece]:
        """Every round of every step: ``Samples`` of ``(1, b, C, H, W)`` for the images that
        took part in the round."""
        x = ctx.x
        kth = int(math.floor(self.fraction * (x[0].numel() - 1))) + 1
        path = _GuidedPaths(x, torch.zeros_like(x), kth)
        moving = path.l1_total > 1e-9
        still = _rows(~moving)  # x is the baseline: nothing moves, one zero sample per step
        rows = _rows(moving)
        cur = path.base.clone()
        g = torch.zeros_like(x)
        for step in range(self.n_samples):
            if _count(still):
                yield Samples(still, torch.zeros_like(x[still]).unsqueeze(0))
            if not _count(rows):
                continue
            for chunk in _chunks(rows, ctx.batch_size):
                g[chunk] = _full_call(ctx, cur, chunk)
            target = path.l1_total * (1 - (step + 1.0) / self.n_samples)
            work, active = g.clone(), moving.clone()
            part = rows
            while True:
                new, more = path.round(part, cur[part], work, self.band(step), target[part])
                yield Samples(part, g[part].unsqueeze(0), (new - cur[part]).unsqueeze(0))
                cur[part] = new
                active[part] = more
                if not bool(active.any()):
                    break
                part = _rows(active)


def _full_call(ctx: GradContext, points: Tensor, rows: slice | Tensor) -> Tensor:
    """Gradients ``(b, C, H, W)`` at ``points[rows]`` from one model call of exactly
    ``ctx.batch_size`` images: a shorter chunk is padded with copies of its last image, whose
    gradients are dropped.

    Kernels may round differently for another number of images in a call (PyTorch's CPU
    convolutions do for 1 image against 2 or more), and Guided IG's choices are thresholds
    that such rounding can flip. With every call the same shape, an image's path does not
    depend on the other images of its batch, nor on how many there are."""
    idx = torch.arange(ctx.batch)[rows] if isinstance(rows, slice) else rows.cpu()
    n = len(idx)
    if n < ctx.batch_size:
        idx = torch.cat([idx, idx[-1:].expand(ctx.batch_size - n)])
    elif isinstance(rows, slice):
        return ctx.grad(points[rows].unsqueeze(0), rows)[0]  # a full chunk: views, no copies
    idx = idx.to(points.device)
    return ctx.grad(points[idx].unsqueeze(0), idx)[0, :n]


def _chunks(rows: slice | Tensor, size: int) -> list[slice | Tensor]:
    """``rows`` in pieces of at most ``size`` images."""
    if isinstance(rows, slice):
        return [slice(i, min(i + size, rows.stop)) for i in range(rows.start, rows.stop, size)]
    return list(rows.split(size))


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
