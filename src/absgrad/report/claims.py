"""The paper's four claims, tested on a run's paired per-image scores.

Each claim gets a status:

* ``confirmed (p = ..)``: the test rejects "no effect" at level 0.05 in the claim's direction,
* ``refuted (p = ..)``: the data show a significant effect against the claim,
* ``inconclusive (n = .. images)``: neither (too few images, or a small effect),
* ``not tested``: a map or metric the claim needs was not computed in the run.

The tests: Spearman's rho between p and mean RCAP with a within-image permutation p-value
(claim 1), paired sign-flip tests with Holm's correction (claims 2 and 3), and a paired
bootstrap of the fitted relative changes over p (claim 4). Decisions that rest on a bootstrap
interval need at least :data:`MIN_IMAGES` images. :func:`rank_pairs` gives Table 2's pairwise
"A beats B" on RCAP, Holm-corrected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from absgrad.names import METRICS, PAPER_METRICS
from absgrad.protocol.catalogue import (
    ABLATION_P,
    GRADIENT_METHODS,
    REVERSED_PAIRS,
    TABLE2,
    gag_label,
)
from absgrad.report.results import Results
from absgrad.report.stats import (
    N_PERMUTATIONS,
    N_RESAMPLES,
    Interval,
    PairedTest,
    bootstrap_ci,
    bootstrap_distribution,
    bootstrap_p,
    holm,
    paired_test,
    spearman_trend,
)

#: Significance level of every claim (family-wise, after Holm's correction where several tests).
ALPHA = 0.05
#: Claim 4: RCAP's relative change over p must exceed this multiple of DAUC's and of IAUC's.
RANGE_FACTOR = 2.0
#: Fewest images for a decision that rests on a bootstrap interval (claims 1 and 4); the
#: percentile bootstrap is too optimistic below.
MIN_IMAGES = 10
_TITLES = {lb: title for title, lb in TABLE2.rows}


@dataclass(frozen=True)
class Claim:
    """One claim's outcome; ``verdict`` is what tables print (status and its p or n)."""

    claim: str
    verdict: str
    evidence: str
    status: str = ""  # confirmed, refuted, inconclusive or not tested
    p_value: float | None = None
    n_images: int = 0


@dataclass(frozen=True)
class ClaimSettings:
    """Resamples and seed of the claims' tests."""

    n_resamples: int = N_RESAMPLES
    n_permutations: int = N_PERMUTATIONS
    seed: int = 0
    alpha: float = ALPHA


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _ci(ci: Interval, d: int = 3) -> str:
    return f"{ci.value:.{d}f} [{ci.lo:.{d}f}, {ci.hi:.{d}f}]"


def _outcome(claim: str, status: str, p: float | None, n: int, evidence: str) -> Claim:
    verdict = {
        "confirmed": f"confirmed (p = {_p(p or 0.0)})",
        "refuted": f"refuted (p = {_p(p or 0.0)})",
        "inconclusive": f"inconclusive (n = {n} images)",
    }.get(status, status)
    return Claim(claim, verdict, evidence, status, p, n)


def _missing(res: Results, labels: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """The (map, metric) pairs without usable per-image scores (absent or not finite)."""
    out = []
    for lb in labels:
        for m in metrics:
            v = res.scores(lb, m)
            if v is None or v.size == 0:
                out.append(f"{lb} {m}")
            elif not np.all(np.isfinite(v)):
                out.append(f"{lb} {m} (non-finite scores)")
    return out


def _not_tested(claim: str, missing: list[str]) -> Claim:
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return Claim(claim, "not tested", f"not computed in this run: {shown}", "not tested")


def _test(res: Results, a: str, b: str, metric: str, alt: str, ts: ClaimSettings) -> PairedTest:
    both = res.paired([a, b], metric)
    assert both is not None
    v = both[1]
    return paired_test(
        v[:, 0],
        v[:, 1],
        alternative=alt,
        n_resamples=ts.n_resamples,
        n_permutations=ts.n_permutations,
        seed=ts.seed,
    )


def claim_rcap_rises(res: Results, ts: ClaimSettings) -> Claim:
    claim = "RCAP rises with p (Table 1)"
    labels = [gag_label(p) for p in ABLATION_P]
    missing = _missing(res, labels, ["rcap"])
    both = None if missing else res.paired(labels, "rcap")
    if both is None:
        return _not_tested(claim, missing or ["GAG-p maps on common images"])
    v = both[1]
    trend = spearman_trend(
        ABLATION_P,
        v,
        n_resamples=ts.n_resamples,
        n_permutations=ts.n_permutations,
        seed=ts.seed,
    )
    rho, n = trend.rho, v.shape[0]
    ev = (
        f"Spearman(p, mean RCAP) = {_ci(rho, 2)} (95% bootstrap over images); "
        f"permutation p = {_p(trend.p_value)}; GAG-0 {v[:, 0].mean():.4f} -> "
        f"GAG-85 {v[:, -1].mean():.4f}; n = {n} images"
    )
    if n < MIN_IMAGES:
        return _outcome(claim, "inconclusive", None, n, ev + f" (< {MIN_IMAGES})")
    if trend.p_value < ts.alpha and rho.lo > 0:
        return _outcome(claim, "confirmed", trend.p_value, n, ev)
    if rho.hi < 0:
        return _outcome(claim, "refuted", trend.p_value, n, ev)
    return _outcome(claim, "inconclusive", None, n, ev)


def _one_vs_all(
    res: Results, best: str, others: Sequence[str], ts: ClaimSettings
) -> tuple[list[PairedTest], list[PairedTest]]:
    """Paired tests of ``best`` > each other (and <), on RCAP."""
    greater = [_test(res, best, o, "rcap", "greater", ts) for o in others]
    less = [_test(res, best, o, "rcap", "less", ts) for o in others]
    return greater, less


def claim_gag_best(res: Results, ts: ClaimSettings) -> Claim:
    claim = "GAG has the best RCAP of the gradient methods (Table 2)"
    gag, others = GRADIENT_METHODS[0], list(GRADIENT_METHODS[1:])
    missing = _missing(res, GRADIENT_METHODS, ["rcap"])
    both = None if missing else res.paired(list(GRADIENT_METHODS), "rcap")
    if both is None:
        return _not_tested(claim, missing or ["gradient methods on common images"])
    n = both[1].shape[0]
    greater, less = _one_vs_all(res, gag, others, ts)
    p_gt, p_lt = holm([t.p_value for t in greater]), holm([t.p_value for t in less])
    closest = int(np.argmin([t.diff.value for t in greater]))
    ev = (
        f"GAG - {_TITLES[others[closest]]} (the closest) = {_ci(greater[closest].diff, 4)}; "
        f"{len(others)} one-sided paired sign-flip tests, Holm-adjusted p of GAG > each: "
        + ", ".join(f"{_TITLES[o]} {_p(p)}" for o, p in zip(others, p_gt, strict=True))
        + f"; n = {n} images"
    )
    if max(p_gt) < ts.alpha:
        return _outcome(claim, "confirmed", max(p_gt), n, ev)
    if min(p_lt) < ts.alpha:
        beats = [_TITLES[o] for o, p in zip(others, p_lt, strict=True) if p < ts.alpha]
        return _outcome(
            claim, "refuted", min(p_lt), n, ev + f"; better than GAG: {', '.join(beats)}"
        )
    return _outcome(claim, "inconclusive", None, n, ev)


def claim_reversed_worse(res: Results, ts: ClaimSettings) -> Claim:
    claim = "Every reversed map is worse than its original on every metric (Table 2)"
    metrics = [m for m in res.metrics if m in PAPER_METRICS]
    labels = [lb for pair in REVERSED_PAIRS for lb in pair]
    missing = _missing(res, labels, metrics) if metrics else ["the paper's metrics"]
    if missing:
        return _not_tested(claim, missing)
    tests, names, against = [], [], []
    for rev, base in REVERSED_PAIRS:
        for m in metrics:
            alt = "greater" if METRICS[m].higher_is_better else "less"
            opposite = "less" if alt == "greater" else "greater"
            tests.append(_test(res, base, rev, m, alt, ts))
            against.append(_test(res, base, rev, m, opposite, ts).p_value)
            names.append(f"{rev} {m}")
    p_for, p_against = holm([t.p_value for t in tests]), holm(against)
    n = min(t.diff.n for t in tests)
    worse = [nm for nm, p in zip(names, p_for, strict=True) if p < ts.alpha]
    better = [nm for nm, p in zip(names, p_against, strict=True) if p < ts.alpha]
    ev = (
        f"{len(worse)} of {len(tests)} (reversed map, metric) pairs significantly worse than the "
        f"original (one-sided paired sign-flip tests, Holm); n = {n} images"
        + (f"; significantly better: {', '.join(better)}" if better else "")
    )
    if len(worse) == len(tests):
        return _outcome(claim, "confirmed", max(p_for), n, ev)
    if better:
        return _outcome(claim, "refuted", min(p_against), n, ev)
    return _outcome(claim, "inconclusive", None, n, ev)


def _rel_change(means: np.ndarray) -> np.ndarray:
    """|least-squares slope over p| x the span of p / mean |level| (last axis: the p values)."""
    p = np.asarray(ABLATION_P)
    pc = p - p.mean()
    slope = (means * pc).sum(axis=-1) / (pc**2).sum()
    scale = np.abs(means).mean(axis=-1)
    change = np.abs(slope) * (p[-1] - p[0])
    return np.divide(change, scale, out=np.zeros_like(change), where=scale > 0)


def claim_auc_flat(res: Results, ts: ClaimSettings) -> Claim:
    claim = "DAUC/IAUC barely move with p while RCAP does (Table 1)"
    labels = [gag_label(p) for p in ABLATION_P]
    missing = _missing(res, labels, ["rcap", "dauc", "iauc"])
    if missing:
        return _not_tested(claim, missing)
    parts = [res.paired(labels, m) for m in ("rcap", "dauc", "iauc")]
    if any(p is None for p in parts):
        return _not_tested(claim, ["GAG-p maps on common images"])
    ids = set.intersection(*(set(p[0]) for p in parts if p is not None))
    cols = [p[1][[i in ids for i in p[0]]] for p in parts if p is not None]
    v, k = np.concatenate(cols, axis=1), len(labels)
    n = v.shape[0]

    def margin(m: np.ndarray) -> np.ndarray:
        r = _rel_change(m[..., :k])
        other = np.maximum(_rel_change(m[..., k : 2 * k]), _rel_change(m[..., 2 * k :]))
        return r - RANGE_FACTOR * other

    ci = bootstrap_ci(v, of=margin, n_resamples=ts.n_resamples, seed=ts.seed)
    assert isinstance(ci, Interval)
    p = bootstrap_p(bootstrap_distribution(v, margin, n_resamples=ts.n_resamples, seed=ts.seed))
    means = v.mean(axis=0)
    ev = (
        f"fitted relative change from p = 0 to 0.85: RCAP {_rel_change(means[:k]):.1%}, DAUC "
        f"{_rel_change(means[k : 2 * k]):.1%}, IAUC {_rel_change(means[2 * k :]):.1%}; "
        f"RCAP's minus {RANGE_FACTOR:g}x the larger of the others = {_ci(ci)} "
        f"(paired bootstrap, p = {_p(p)}); n = {n} images"
    )
    if n < MIN_IMAGES:
        return _outcome(claim, "inconclusive", None, n, ev + f" (< {MIN_IMAGES})")
    if ci.lo > 0:
        return _outcome(claim, "confirmed", p, n, ev)
    if ci.hi < 0:
        return _outcome(claim, "refuted", p, n, ev)
    return _outcome(claim, "inconclusive", None, n, ev)


def check_claims(res: Results, settings: ClaimSettings | None = None) -> list[Claim]:
    """The four claims, each tested on the run's per-image scores."""
    ts = settings or ClaimSettings(seed=int(res.meta.get("config", {}).get("seed", 0)))
    return [
        claim_rcap_rises(res, ts),
        claim_gag_best(res, ts),
        claim_reversed_worse(res, ts),
        claim_auc_flat(res, ts),
    ]


def claims_markdown(claims: list[Claim]) -> str:
    lines = ["| Claim | Verdict | Evidence |", "|---|---|---|"]
    lines += [f"| {c.claim} | {c.verdict} | {c.evidence} |" for c in claims]
    return "\n".join(lines) + "\n"


# -- Table 2's ranking -----------------------------------------------------------------------
@dataclass(frozen=True)
class Pairwise:
    """``a`` vs ``b`` on one metric: the paired difference, its test and the Holm-adjusted p."""

    a: str
    b: str
    test: PairedTest
    p_holm: float


@dataclass(frozen=True)
class Ranking:
    """Maps ordered by their mean (best first), with every pairwise comparison."""

    metric: str
    order: list[str]
    means: dict[str, Interval]
    pairs: list[Pairwise]
    alpha: float = ALPHA

    def beats(self, label: str) -> list[str]:
        """The maps ``label`` is significantly better than (Holm-adjusted)."""
        hib = METRICS[self.metric].higher_is_better
        out = []
        for pw in self.pairs:
            if pw.p_holm >= self.alpha or label not in (pw.a, pw.b):
                continue
            a_better = (pw.test.diff.value > 0) == hib
            winner, loser = (pw.a, pw.b) if a_better else (pw.b, pw.a)
            if winner == label:
                out.append(loser)
        return out


def rank_pairs(
    res: Results,
    labels: Sequence[str] | None = None,
    metric: str = "rcap",
    settings: ClaimSettings | None = None,
) -> Ranking | None:
    """Pairwise two-sided paired tests of every two maps (default: Table 2's methods, not the
    reversed maps) on ``metric``, Holm-adjusted over all pairs. None with fewer than 2 maps."""
    ts = settings or ClaimSettings(seed=int(res.meta.get("config", {}).get("seed", 0)))
    if labels is None:
        reversed_rows = {rev for rev, _ in REVERSED_PAIRS}
        labels = [lb for _, lb in TABLE2.rows if lb not in reversed_rows]
    labels = [lb for lb in labels if not _missing(res, [lb], [metric])]
    if len(labels) < 2:
        return None
    means = {}
    for lb in labels:
        ci = bootstrap_ci(res.scores(lb, metric), n_resamples=ts.n_resamples, seed=ts.seed)
        assert isinstance(ci, Interval)
        means[lb] = ci
    sign = 1 if METRICS[metric].higher_is_better else -1
    order = sorted(labels, key=lambda lb: -sign * means[lb].value)
    tests = [
        (a, b, _test(res, a, b, metric, "two-sided", ts))
        for i, a in enumerate(order)
        for b in order[i + 1 :]
    ]
    adj = holm([t.p_value for _, _, t in tests])
    pairs = [Pairwise(a, b, t, p) for (a, b, t), p in zip(tests, adj, strict=True)]
    return Ranking(metric, order, means, pairs, ts.alpha)


def ranking_markdown(r: Ranking, titles: dict[str, str] | None = None) -> str:
    """Table 2's ranking: each map, its mean and interval, and whom it beats significantly."""
    t = titles or {}
    m = METRICS[r.metric]
    n = min(ci.n for ci in r.means.values())
    lines = [
        f"**Ranking on {m.title} {m.arrow}: pairwise paired sign-flip tests, Holm-adjusted over "
        f"{len(r.pairs)} pairs (level {r.alpha:g}), n = {n} images**",
        "",
        f"| Rank | Method | {m.title} (95% CI) | Significantly better than |",
        "|---:|---|---|---|",
    ]
    for i, lb in enumerate(r.order, start=1):
        beats = ", ".join(t.get(x, x) for x in r.beats(lb)) or "—"
        lines.append(f"| {i} | {t.get(lb, lb)} | {_ci(r.means[lb], 4)} | {beats} |")
    return "\n".join(lines) + "\n"
