"""Aggregators and running statistics against explicit computations on a stack of samples."""

from __future__ import annotations

import pytest
import torch

from absgrad.methods import PROCESSINGS, SampleStats, aggregate, variance_guide
from absgrad.methods.aggregators import linear_quantile


def _feed(
    stack: torch.Tensor, chunks: list[int], procs=("raw", "pos", "neg", "abs"), source="processed"
):
    """Feed ``stack (N, B, C, H, W)`` in sample chunks, splitting the batch in two halves."""
    stats = SampleStats(procs, source)
    b = stack.shape[1]
    start = 0
    for k in chunks:
        part = stack[start : start + k]
        for imgs in (slice(0, b // 2), slice(b // 2, b)):
            stats.add({p: PROCESSINGS[p](part[:, imgs]) for p in procs}, imgs, b)
        start += k
    assert start == stack.shape[0]
    return stats


@pytest.fixture
def stack() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(7, 4, 3, 5, 6, generator=g, dtype=torch.float64) * 3 + 1


def test_welford_variance_equals_torch_var(stack):
    stats = _feed(stack, [1, 3, 2, 1])
    torch.testing.assert_close(
        stats.variance("raw"), stack.var(dim=0, unbiased=True), rtol=1e-10, atol=1e-10
    )
    torch.testing.assert_close(
        stats.variance("abs"), stack.abs().var(dim=0), rtol=1e-10, atol=1e-10
    )
    assert stats.n == 7


def test_mean_and_var_aggregations(stack):
    stats = _feed(stack, [4, 3])
    torch.testing.assert_close(aggregate(stats, "raw", "mean"), stack.mean(0))
    torch.testing.assert_close(aggregate(stats, "pos", "mean"), stack.clamp(min=0).mean(0))
    torch.testing.assert_close(aggregate(stats, "neg", "mean"), stack.clamp(max=0).mean(0))
    torch.testing.assert_close(aggregate(stats, "raw", "var"), stack.var(0))


def _guide_reference(v: torch.Tensor, p: float) -> torch.Tensor:
    out = torch.empty_like(v)
    for b in range(v.shape[0]):
        for c in range(v.shape[1]):
            q = torch.quantile(v[b, c].flatten(), p)
            out[b, c] = torch.where(v[b, c] > q, torch.ones_like(v[b, c]), v[b, c])
    return out


@pytest.mark.parametrize("p", [0.15, 0.5, 0.85])
def test_guided_equals_formula_on_explicit_stack(stack, p):
    # noise sampler: variance of the RAW samples guides the sum of |samples|
    stats = _feed(stack, [2, 5], source="raw")
    expected = _guide_reference(stack.var(0), p) * stack.abs().sum(0)
    torch.testing.assert_close(aggregate(stats, "abs", "guided", p), expected)
    # path samplers: variance of the processed samples
    stats = _feed(stack, [7], source="processed")
    expected = _guide_reference(stack.clamp(min=0).var(0), p) * stack.clamp(min=0).sum(0)
    torch.testing.assert_close(aggregate(stats, "pos", "guided", p), expected)


def test_guided_p0_is_plain_sum(stack):
    stats = _feed(stack, [7], source="raw")
    torch.testing.assert_close(aggregate(stats, "abs", "guided", 0.0), stack.abs().sum(0))


def test_linear_quantile_matches_torch():
    x = torch.rand(3, 2, 101, dtype=torch.float64)
    for q in (0.0, 0.15, 0.85, 0.999):
        torch.testing.assert_close(
            linear_quantile(x, q), torch.quantile(x, q, dim=-1, keepdim=True)
        )


def test_variance_guide_values_are_one_above_quantile():
    v = torch.arange(100, dtype=torch.float64).view(1, 1, 10, 10)
    g = variance_guide(v, 0.85)
    assert (g[v > 84.15] == 1).all() and torch.equal(g[v <= 84.15], v[v <= 84.15])


def test_variance_needs_two_samples():
    stats = SampleStats(["raw"])
    stats.add({"raw": torch.ones(1, 1, 1, 2, 2)}, slice(0, 1), 1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.variance("raw")


def test_variance_kept_only_where_asked_and_sums_unchanged():
    g = torch.Generator().manual_seed(2)
    chunks = [torch.randn(k, 2, 1, 3, 3, generator=g, dtype=torch.float64) for k in (3, 1, 4)]
    full, lean = SampleStats(["raw", "abs"]), SampleStats(["raw", "abs"], variance_of=["raw"])
    for c in chunks:
        for stats in (full, lean):
            stats.add({"raw": c, "abs": c.abs()}, slice(0, 2), 2)
    every = torch.cat(chunks)
    assert torch.allclose(lean.variance("raw"), every.var(dim=0), atol=1e-12)
    assert torch.equal(lean.sum["abs"], full.sum["abs"]) and "abs" not in lean.m2
    assert torch.allclose(full.variance("abs"), every.abs().var(dim=0), atol=1e-12)
    with pytest.raises(ValueError, match="variance of 'abs' was not tracked"):
        lean.variance("abs")
    with pytest.raises(ValueError, match="untracked processings"):
        SampleStats(["raw"], variance_of=["abs"])
