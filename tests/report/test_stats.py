"""Bootstrap intervals and paired tests against independent computations (loops, scipy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from absgrad.errors import AbsgradError
from absgrad.report.stats import (
    bootstrap_ci,
    bootstrap_distribution,
    holm,
    paired_test,
    spearman,
    spearman_trend,
    unpaired_diff,
)


def _loop_bootstrap(values, stat, n_resamples, seed):
    rng = np.random.default_rng(seed + 12345)
    n = len(values)
    out = []
    for _ in range(n_resamples):
        idx = [int(rng.integers(0, n)) for _ in range(n)]
        out.append(stat(values[idx]))
    return np.quantile(out, [0.025, 0.975])


def test_mean_interval_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(3).gamma(2.0, 0.1, size=40)
    ci = bootstrap_ci(x, n_resamples=20000, seed=1)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=20000, method="percentile", random_state=np.random.default_rng(2)
    ).confidence_interval
    width = ref.high - ref.low
    assert ci.value == pytest.approx(x.mean(), abs=1e-15)
    assert ci.lo == pytest.approx(ref.low, abs=0.05 * width)
    assert ci.hi == pytest.approx(ref.high, abs=0.05 * width)
    assert ci.n == 40 and ci.lo < ci.value < ci.hi


def test_columns_are_resampled_together_and_match_a_loop():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, size=30)
    v = np.stack([base, base * 1.5 + rng.normal(0, 0.01, 30)], axis=1)
    ratio = bootstrap_ci(v, of=lambda m: m[..., 1] / m[..., 0], n_resamples=8000, seed=0)
    lo, hi = _loop_bootstrap(v, lambda s: s[:, 1].mean() / s[:, 0].mean(), 4000, 0)
    assert ratio.value == pytest.approx(v[:, 1].mean() / v[:, 0].mean())
    # paired resampling: the ratio is nearly constant per image, so its interval is narrow
    assert ratio.hi - ratio.lo < 0.02
    assert ratio.lo == pytest.approx(lo, abs=0.15 * (hi - lo) + 1e-3)
    assert ratio.hi == pytest.approx(hi, abs=0.15 * (hi - lo) + 1e-3)
    per_col = bootstrap_ci(v, n_resamples=500, seed=0)
    assert [c.value for c in per_col] == pytest.approx(v.mean(axis=0).tolist())


def test_intervals_are_seeded_and_independent_of_chunking(monkeypatch):
    import absgrad.report.stats as st

    x = np.random.default_rng(1).normal(size=(25, 3))
    a = bootstrap_ci(x, n_resamples=300, seed=7)
    assert a == bootstrap_ci(x, n_resamples=300, seed=7)
    assert a != bootstrap_ci(x, n_resamples=300, seed=8)
    monkeypatch.setattr(st, "_CHUNK", 25 * 3 * 7)  # 7 resamples at a time
    assert a == bootstrap_ci(x, n_resamples=300, seed=7)
    dist = bootstrap_distribution(x, lambda m: m[..., 0], n_resamples=300, seed=7)
    assert np.quantile(dist, 0.025) == pytest.approx(a[0].lo)


def test_paired_sign_flip_p_is_exact_for_few_images():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.5, 0.1, 10), rng.normal(0.45, 0.1, 10)
    for alt in ("two-sided", "greater", "less"):
        res = paired_test(a, b, alternative=alt, n_resamples=200)
        ref = sps.permutation_test(
            (a, b),
            lambda x, y: np.mean(x - y),
            permutation_type="samples",
            alternative=alt,
            n_resamples=np.inf,
        )
        assert res.exact and res.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    # a full enumeration written out: the share of sign patterns as extreme as the data
    d = a - b
    flips = [np.mean(np.array(s) * d) for s in itertools.product((1, -1), repeat=10)]
    expected = np.mean(np.abs(flips) >= abs(d.mean()) - 1e-12)
    assert paired_test(a, b).p_value == pytest.approx(expected)


def test_paired_test_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.2, 200)
    shifted = paired_test(a + 0.05 + rng.normal(0, 0.01, 200), a, alternative="greater")
    assert not shifted.exact and shifted.p_value < 1e-3 and shifted.diff.lo > 0
    same = paired_test(a + rng.normal(0, 0.01, 200), a)
    assert same.p_value > 0.01 and same.diff.lo < 0 < same.diff.hi


def test_unpaired_difference_interval_covers_the_true_shift():
    rng = np.random.default_rng(2)
    d = unpaired_diff(rng.normal(1.0, 0.1, 300), rng.normal(0.8, 0.1, 200), seed=1)
    assert d.lo < 0.2 < d.hi and d.hi - d.lo < 0.06


def test_spearman_matches_scipy_with_ties():
    x = np.array([0.0, 0.15, 0.25, 0.35, 0.45])
    for y in ([1, 3, 2, 5, 4], [1, 1, 2, 2, 3], [5, 4, 3, 2, 1]):
        ref = sps.spearmanr(x, y).statistic
        assert spearman(x, np.array(y, float)) == pytest.approx(ref)
    assert spearman(x, np.full(5, 2.0)) == 0.0  # constant scores: no trend


def test_spearman_trend_rises_and_permutation_p():
    rng = np.random.default_rng(0)
    p = np.linspace(0, 0.85, 9)
    rising = 0.2 + 0.2 * p + rng.normal(0, 0.05, (30, 9))
    t = spearman_trend(p, rising, n_permutations=2000)
    assert t.rho.value > 0.8 and t.rho.lo > 0 and t.p_value < 0.01
    flat = spearman_trend(p, rng.normal(0, 0.05, (30, 9)), n_permutations=2000)
    assert flat.p_value > 0.01


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    expected, running = [0.0] * m, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        expected[i] = running
    assert holm(p) == pytest.approx(expected)
    assert holm([0.2]) == [0.2]


def test_bad_input_is_named():
    with pytest.raises(AbsgradError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])
    with pytest.raises(AbsgradError, match="no images"):
        bootstrap_ci([])
    with pytest.raises(AbsgradError, match="paired"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(AbsgradError, match="alternative"):
        paired_test([1.0], [1.0], alternative="bigger")
