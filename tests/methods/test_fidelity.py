"""The paper's Table 3 variants, computed independently here with explicit loops over samples,
trials, steps and rounds (float64), against absgrad's samplers x processing x aggregators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import absgrad

T = torch.tensor([1, 3])
PROC = {
    "raw": lambda a: a,
    "pos": lambda a: np.maximum(a, 0),
    "neg": lambda a: np.minimum(a, 0),
    "abs": np.abs,
}
SEEDS = [101, 202]


def grad_of(model, target):
    def g(point: np.ndarray) -> np.ndarray:
        p = torch.from_numpy(point[None]).requires_grad_(True)
        model(p)[0, target].backward()
        return p.grad[0].numpy()

    return g


def guided(samples: np.ndarray, p: float, summed: np.ndarray | None = None) -> np.ndarray:
    """G * sum_i a_i with G from the unbiased variance over ``samples``, per channel (one image).

    ``summed``: the samples the sum is over when they differ from those the variance is over
    (the reference's path samplers with abs: the variance before the second |.|, the sum after)."""
    v = samples.var(axis=0, ddof=1)
    q = np.quantile(v.reshape(v.shape[0], -1), p, axis=1)[:, None, None]
    return np.where(v > q, 1.0, v) * (samples if summed is None else summed).sum(axis=0)


def finish(processing: str, path_samples: np.ndarray) -> np.ndarray:
    """The second |.| the reference takes of each whole path sample with abs (SPEC §2.2)."""
    return np.abs(path_samples) if processing == "abs" else path_samples


def check(got: torch.Tensor, expected: list[np.ndarray]) -> float:
    diff = float(np.abs(got.numpy() - np.stack(expected)).max())
    scale = float(np.abs(np.stack(expected)).max())
    assert scale > 0 and diff <= 1e-5 * scale, (diff, scale)
    return diff


# ---------------------------------------------------------------- IG: random baselines, trials
def ig_samples(model, x, i, processing, trials, m, seed):
    """The path's trial samples (x - b_t) * mean_k p(g_k), before the second |.| of abs;
    b_t ~ U(min x_i, max x_i) from the image's own generator."""
    xi = x[i].numpy()
    gen = torch.Generator().manual_seed(seed)
    grad, out = grad_of(model, int(T[i])), []
    for _ in range(trials):
        u = torch.rand(xi.shape, generator=gen, dtype=torch.float64).numpy()
        b = xi.min() + (xi.max() - xi.min()) * u
        acc = np.zeros_like(xi)
        for k in range(m):
            acc += PROC[processing](grad(b + (k / (m - 1)) * (xi - b))) / m
        out.append((xi - b) * acc)
    return np.stack(out)


@pytest.mark.parametrize("processing", ["raw", "pos", "neg", "abs"])
def test_ig_variants(dmodel, x, processing):
    trials, m = 3, 4
    samples = [ig_samples(dmodel, x, i, processing, trials, m, SEEDS[i]) for i in range(2)]
    common = dict(n_samples=trials, steps=m, processing=processing, seeds=SEEDS, batch_size=3)
    mean = absgrad.attribute(dmodel, x, T, "ig", **common)
    g85 = absgrad.attribute(dmodel, x, T, "ig", aggregation="guided", percentile=0.85, **common)
    d1 = check(mean, [finish(processing, s).mean(0) for s in samples])
    d2 = check(g85, [guided(s, 0.85, finish(processing, s)) for s in samples])
    print(f"\n[fidelity] IG-{processing}: mean {d1:.2e}, guided {d2:.2e}")


def test_ig_abs_takes_abs_of_the_whole_sample(dmodel, x):
    # with abs, a trial sample is never negative; without the second |.| it would be
    a = absgrad.attribute(dmodel, x, T, "ig", processing="abs", n_samples=2, seeds=SEEDS)
    assert (a >= 0).all()
    signed = [ig_samples(dmodel, x, i, "pos", 2, 5, SEEDS[i]) for i in range(2)]
    assert min(s.min() for s in signed) < 0  # the path term (x - b) has both signs


# ---------------------------------------------------------------- BlurIG: steps on the blur path
def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return a
    return ndimage.gaussian_filter(a, sigma=(0, sigma, sigma), mode="mirror", radius=(0, 20, 20))


@pytest.mark.parametrize("processing", ["raw", "pos", "neg", "abs"])
def test_blurig_variants(dmodel, processing):
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    n, max_sigma, d = 5, 8.0, 0.01
    sig = [k * max_sigma / n for k in range(n + 1)]
    expected_mean, expected_guided = [], []
    for i in range(2):
        xi, grad, out = x[i].numpy(), grad_of(dmodel, int(T[i])), []
        for k in range(n):
            xb = blur(xi, sig[k])
            deriv = (blur(xi, sig[k] + d) - xb) / d
            out.append((sig[k + 1] - sig[k]) * PROC[processing](grad(xb)) * deriv)
        s = np.stack(out)
        expected_mean.append(finish(processing, s).mean(0))
        expected_guided.append(guided(s, 0.85, finish(processing, s)))
    common = dict(n_samples=n, max_sigma=max_sigma, processing=processing, batch_size=4)
    d1 = check(absgrad.attribute(dmodel, x, T, "blurig", **common), expected_mean)
    d2 = check(
        absgrad.attribute(dmodel, x, T, "blurig", aggregation="guided", **common), expected_guided
    )
    print(f"\n[fidelity] BlurIG-{processing}: mean {d1:.2e}, guided {d2:.2e}")


# ---------------------------------------------------------------- Guided IG: rounds of moves
def guided_ig_rounds(grad, x, steps, fraction=0.25, max_dist=0.1):
    """Every round of every step of Guided IG from the zero baseline, as separate samples."""
    base = np.zeros_like(x)
    diff = x - base
    total = np.abs(diff).sum()
    cur, rounds = base.copy(), []
    for step in range(steps):
        g = grad(cur)
        work = g.copy()
        alpha = (step + 1) / steps
        a_min, a_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = base + a_min * diff, base + a_max * diff
        target = total * (1 - alpha)
        gamma = np.inf
        while gamma > 1:
            old = cur.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                pos = np.where(diff != 0, (cur - base) / diff, a_max)
            cur = np.where(pos < a_min, x_min, cur)
            l1 = np.abs(cur - x).sum()
            if np.isclose(target, l1, rtol=1e-9, atol=1e-9):
                rounds.append((cur - old) * g)
                break
            work[cur == x_max] = np.inf
            thr = np.quantile(np.abs(work), fraction, method="lower")
            sel = (np.abs(work) <= thr) & np.isfinite(work)
            l1_s = (np.abs(cur - x_max) * sel).sum()
            if l1_s == 0:
                rounds.append((cur - old) * g)
                break
            gamma = (l1 - target) / l1_s
            cur = np.where(sel, x_max if gamma > 1 else cur + gamma * (x_max - cur), cur)
            rounds.append((cur - old) * g)
    return np.stack(rounds)


def test_guided_ig_samples_are_rounds(dmodel, x):
    steps = 8
    rounds = [guided_ig_rounds(grad_of(dmodel, int(T[i])), x[i].numpy(), steps) for i in range(2)]
    assert all(len(r) > steps for r in rounds)  # some steps take more than one round
    for processing in ("raw", "pos", "neg", "abs"):
        s = [PROC[processing](r) for r in rounds]
        common = dict(n_samples=steps, processing=processing)
        d1 = check(absgrad.attribute(dmodel, x, T, "guidedig", **common), [r.mean(0) for r in s])
        d2 = check(
            absgrad.attribute(dmodel, x, T, "guidedig", aggregation="guided", **common),
            [guided(r, 0.85) for r in s],
        )
        print(
            f"\n[fidelity] Guided IG-{processing} ({len(rounds[0])}, {len(rounds[1])} rounds): "
            f"mean {d1:.2e}, guided {d2:.2e}"
        )


# ---------------------------------------------------------------- noise: per-image scale
def test_noise_scale_is_per_image(dmodel, x):
    x = x * torch.tensor([1.0, 5.0], dtype=x.dtype).view(2, 1, 1, 1)  # different ranges
    n, spread = 4, 0.2
    expected = []
    for i in range(2):
        gen = torch.Generator().manual_seed(SEEDS[i])
        xi, grad = x[i].numpy(), grad_of(dmodel, int(T[i]))
        s = spread * (xi.max() - xi.min())
        gs = [
            grad(xi + s * torch.randn(xi.shape, generator=gen, dtype=x.dtype).numpy())
            for _ in range(n)
        ]
        expected.append(np.mean(gs, axis=0))
    got = absgrad.attribute(
        dmodel, x, T, "sg", n_samples=n, spread=spread, seeds=SEEDS, batch_size=3
    )
    check(got, expected)
