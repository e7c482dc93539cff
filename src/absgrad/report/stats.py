"""Uncertainty over images: bootstrap confidence intervals and paired tests (numpy, vectorised).

Every function resamples *images*: rows of the ``(n,)`` or ``(n, k)`` arrays it takes. Columns of
one array are resampled together (paired), which is what comparing two maps scored on the same
images needs. All functions are seeded and deterministic.

* :func:`bootstrap_ci`: percentile interval of the mean of each column, or of any function of the
  column means (e.g. a ratio of means, a difference, a rank correlation across columns).
* :func:`paired_test`: mean difference of two paired score vectors, its bootstrap interval and a
  sign-flip permutation p-value (exact for up to 16 images).
* :func:`unpaired_diff`: the same for two independent samples (bootstrap only).
* :func:`spearman_trend`: Spearman correlation between a setting (columns) and the mean score,
  with its bootstrap interval and a within-image permutation p-value.
* :func:`holm`: Holm's step-down adjustment of a family of p-values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from absgrad.errors import AbsgradError

#: Defaults of every interval the protocol reports.
N_RESAMPLES = 2000
LEVEL = 0.95
#: Resamples of a sign-flip test when it cannot enumerate every sign pattern.
N_PERMUTATIONS = 10_000
_EXACT_UP_TO = 16  # images: 2**16 sign patterns are enumerated exactly
_CHUNK = 2_000_000  # resampled values held at once


@dataclass(frozen=True)
class Interval:
    """An estimate and its percentile bootstrap interval over ``n`` images."""

    value: float
    lo: float
    hi: float
    n: int
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def excludes(self, x: float = 0.0) -> bool:
        return not (self.lo <= x <= self.hi)


@dataclass(frozen=True)
class PairedTest:
    """``mean(a - b)``, its interval, and the permutation p-value of "no difference"."""

    diff: Interval
    p_value: float
    alternative: str
    exact: bool


def _as_2d(values: np.ndarray | Sequence[float], name: str = "values") -> tuple[np.ndarray, bool]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise AbsgradError(f"{name} must have shape (n,) or (n, k), got {v.shape}")
    if v.shape[0] == 0:
        raise AbsgradError(f"{name} holds no images")
    if not np.all(np.isfinite(v)):
        raise AbsgradError(f"{name} holds NaN or infinite scores")
    return (v[:, None], True) if v.ndim == 1 else (v, False)


def _check(n_resamples: int, level: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise AbsgradError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0 < level < 1:
        raise AbsgradError(f"level must be in (0, 1), got {level!r}")


def resampled_means(
    values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """Column means of ``n_resamples`` bootstrap resamples of the rows of ``values (n, k)``.

    Returns ``(n_resamples, k)``. The same resampled rows serve every column (paired).
    """
    v, _ = _as_2d(values)
    n, k = v.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, k))
    step = max(1, _CHUNK // max(1, n * k))
    for start in range(0, n_resamples, step):
        stop = min(n_resamples, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = v[idx].mean(axis=1)
    return out


def _percentiles(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - level) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha], axis=0)
    return lo, hi


def bootstrap_ci(
    values: np.ndarray | Sequence[float],
    *,
    of: Callable[[np.ndarray], np.ndarray] | None = None,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval | list[Interval]:
    """Percentile bootstrap interval over images (rows).

    ``values``: ``(n,)`` scores of n images, or ``(n, k)`` (k paired columns, e.g. maps).
    ``of``: a function of the column means, ``(..., k) -> (...)``, applied to the observed means
    and to each resample's (e.g. ``lambda m: m[..., 1] / m[..., 0]`` for a ratio of means);
    without it, the mean of each column. Returns one :class:`Interval` for ``(n,)`` input or
    when ``of`` is given, else one per column.
    """
    _check(n_resamples, level)
    v, flat = _as_2d(values)
    boot = resampled_means(v, n_resamples, seed)
    n = v.shape[0]
    if of is not None:
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample may divide by 0
            est = float(np.asarray(of(v.mean(axis=0))))
            stat = np.asarray(of(boot), dtype=np.float64)
        lo, hi = _percentiles(stat[np.isfinite(stat)], level)
        return Interval(est, float(lo), float(hi), n, level)
    lo, hi = _percentiles(boot, level)
    out = [
        Interval(float(m), float(a), float(b), n, level)
        for m, a, b in zip(v.mean(0), lo, hi, strict=True)
    ]
    return out[0] if flat else out


def bootstrap_distribution(
    values: np.ndarray | Sequence[float],
    of: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """``of(column means)`` on each of ``n_resamples`` resamples of the rows: ``(n_resamples,)``.

    The resamples are those of :func:`bootstrap_ci` with the same seed (same interval).
    """
    _check(n_resamples, LEVEL)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(of(resampled_means(values, n_resamples, seed)), dtype=np.float64)


def bootstrap_p(samples: np.ndarray, null: float = 0.0) -> float:
    """Two-sided bootstrap p-value of ``statistic = null``: twice the smaller share of
    resamples on either side of ``null`` (Efron's achieved significance level), at most 1."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return 1.0
    below = (np.sum(s <= null) + 1) / (s.size + 1)
    above = (np.sum(s >= null) + 1) / (s.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def _sign_flip_means(d: np.ndarray, n_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """Means of ``d`` under random (or, for few images, all) sign patterns."""
    n = d.shape[0]
    if n <= _EXACT_UP_TO:
        codes = np.arange(2**n)[:, None] >> np.arange(n)[None, :] & 1
        return ((1 - 2 * codes) * d).mean(axis=1), True
    rng = np.random.default_rng(seed)
    out = np.empty(n_permutations)
    step = max(1, _CHUNK // n)
    for start in range(0, n_permutations, step):
        stop = min(n_permutations, start + step)
        signs = rng.integers(0, 2, size=(stop - start, n)) * 2 - 1
        out[start:stop] = (signs * d).mean(axis=1)
    return out, False


def _perm_p(null: np.ndarray, observed: float, alternative: str, exact: bool) -> float:
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        hits = np.sum(null >= observed - tol)
    elif alternative == "less":
        hits = np.sum(null <= observed + tol)
    else:
        hits = np.sum(np.abs(null) >= abs(observed) - tol)
    if exact:
        return float(hits / null.shape[0])
    return float((hits + 1) / (null.shape[0] + 1))


def paired_test(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    alternative: str = "two-sided",
    n_resamples: int = N_RESAMPLES,
    n_permutations: int = N_PERMUTATIONS,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedTest:
    """Paired comparison of two maps' scores on the same ``n`` images, ``a (n,)``, ``b (n,)``.

    The difference is ``mean(a - b)`` with its percentile bootstrap interval; the p-value is a
    sign-flip permutation test of "the per-image differences are symmetric around 0"
    (``alternative``: ``"greater"`` tests a > b, ``"less"`` a < b, or ``"two-sided"``).
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise AbsgradError(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}"
        )
    av, _ = _as_2d(a, "a")
    bv, _ = _as_2d(b, "b")
    if av.shape != bv.shape or av.shape[1] != 1:
        raise AbsgradError(
            f"a and b must be paired score vectors of one shape (n,), got {av.shape} and {bv.shape}"
        )
    d = (av - bv)[:, 0]
    diff = bootstrap_ci(d, n_resamples=n_resamples, level=level, seed=seed)
    assert isinstance(diff, Interval)
    null, exact = _sign_flip_means(d, n_permutations, seed + 1)
    return PairedTest(diff, _perm_p(null, float(d.mean()), alternative, exact), alternative, exact)


def unpaired_diff(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """``mean(a) - mean(b)`` for two independent image samples, with its bootstrap interval."""
    _check(n_resamples, level)
    av, _ = _as_2d(a, "a")
    bv, _ = _as_2d(b, "b")
    da = resampled_means(av[:, :1], n_resamples, seed)[:, 0]
    db = resampled_means(bv[:, :1], n_resamples, seed + 1)[:, 0]
    lo, hi = _percentiles(da - db, level)
    est = float(av[:, 0].mean() - bv[:, 0].mean())
    return Interval(est, float(lo), float(hi), min(av.shape[0], bv.shape[0]), level)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along the last axis, vectorised."""
    less = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(axis=-1)
    return less + (equal + 1) / 2


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho between ``x (k,)`` and each row of ``y (..., k)`` (0 where y is constant)."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    rx = rx - rx.mean()
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx**2).sum() * (ry**2).sum(axis=-1))
    num = (ry * rx).sum(axis=-1)
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


@dataclass(frozen=True)
class Trend:
    """Spearman's rho between a setting and the mean score, its interval and p-value."""

    rho: Interval
    p_value: float


def spearman_trend(
    settings: Sequence[float],
    values: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    n_permutations: int = N_PERMUTATIONS,
    level: float = LEVEL,
    seed: int = 0,
) -> Trend:
    """Does the mean score rise with the setting? ``values (n, k)``: n images x k settings.

    rho = Spearman(settings, column means); its interval resamples images. The one-sided
    p-value permutes the settings within each image independently (no trend: each image's k
    scores are exchangeable) and counts permuted rho >= the observed one.
    """
    v, _ = _as_2d(values)
    s = np.asarray(settings, dtype=np.float64)
    if v.shape[1] != s.shape[0] or s.shape[0] < 2:
        raise AbsgradError(
            f"values must have one column per setting (>= 2), got {v.shape} for {s.shape[0]}"
        )
    rho = bootstrap_ci(
        v, of=lambda m: spearman(s, m), n_resamples=n_resamples, level=level, seed=seed
    )
    assert isinstance(rho, Interval)
    rng = np.random.default_rng(seed + 2)
    n, k = v.shape
    null = np.empty(n_permutations)
    step = max(1, _CHUNK // (n * k))
    for start in range(0, n_permutations, step):
        stop = min(n_permutations, start + step)
        order = np.argsort(rng.random((stop - start, n, k)), axis=-1)
        null[start:stop] = spearman(s, np.take_along_axis(v[None], order, axis=-1).mean(axis=1))
    return Trend(rho, _perm_p(null, rho.value, "greater", exact=False))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.shape[0]
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return [float(x) for x in out]
