"""explain_many shares samplers; Captum-style classes; the registry; reversed maps."""

from __future__ import annotations

import math

import pytest
import torch

import absgrad
from absgrad.methods import CLASSES, METHODS, explain_many, sampler_groups
from absgrad.methods.randomness import image_generators


class Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.images = inner, 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.inner(x)


NOISE_FAMILY = {
    "SG": ("sg", {}),
    "VarGrad": ("vargrad", {}),
    "SG+": ("sg", {"processing": "pos"}),
    "SG-": ("sg", {"processing": "neg"}),
    "GAG-0": ("gag", {"percentile": 0.0}),
    "SG-G": ("sg", {"aggregation": "guided"}),
    **{
        f"GAG-{int(p * 100)}": ("gag", {"percentile": p})
        for p in (0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85)
    },
}


def test_noise_family_is_one_sampler_run_and_equals_separate_calls(tiny_model, tiny_inputs):
    params = {k: (m, {**p, "n_samples": 5}) for k, (m, p) in NOISE_FAMILY.items()}
    assert len(sampler_groups(params)) == 1
    counting = Counting(tiny_model)
    maps = explain_many(counting, tiny_inputs, [0, 1], params, seed=3)
    assert counting.images == 5 * 2  # N samples x B images, once for all 14 maps
    for label, (m, p) in params.items():
        sep = absgrad.explain(
            tiny_model, tiny_inputs, [0, 1], m, generator=torch.Generator().manual_seed(3), **p
        )
        assert torch.equal(maps[label], sep), label


def test_groups_split_by_sampler_parameters():
    reqs = {
        "a": ("sg", {}),
        "b": ("sg", {"spread": 0.2}),
        "c": ("ig", {}),
        "d": ("ig", {"processing": "abs"}),
        "e": ("gb", {}),
        "f": ("gb", {"hook": "abs"}),
        "g": ("gradcam", {}),
        "h": ("gag", {}),
    }
    groups = sampler_groups(reqs)
    assert sorted(map(sorted, groups)) == [["a", "h"], ["b"], ["c", "d"], ["e"], ["f"], ["g"]]


def test_given_groups_are_used_as_they_are_and_checked(tiny_model, tiny_inputs):
    reqs = {"a": ("sg", {"n_samples": 3}), "h": ("gag", {"n_samples": 3}), "c": ("vg", {})}
    counting = Counting(tiny_model)
    given = explain_many(counting, tiny_inputs, [0, 1], reqs, seed=1, groups=[["c"], ["a", "h"]])
    assert counting.images == (1 + 3) * 2  # one run of each sampler, in the order given
    grouped = explain_many(tiny_model, tiny_inputs, [0, 1], reqs, seed=1)
    assert all(torch.equal(given[k], grouped[k]) for k in reqs)
    with pytest.raises(ValueError, match="do not share one sampler run"):
        explain_many(tiny_model, tiny_inputs, [0, 1], reqs, groups=[["a", "c"], ["h"]])
    with pytest.raises(ValueError, match="every requested label once"):
        explain_many(tiny_model, tiny_inputs, [0, 1], reqs, groups=[["a", "h"]])


def test_registry_lists_every_method_with_defaults():
    assert set(METHODS) == {
        "vg",
        "sg",
        "vargrad",
        "ig",
        "blurig",
        "guidedig",
        "gb",
        "gradcam",
        "gag",
    }
    assert (
        METHODS["gag"].defaults["percentile"] == 0.85
        and METHODS["gag"].defaults["processing"] == "abs"
    )
    assert METHODS["sg"].defaults["n_samples"] == 20 and METHODS["sg"].defaults["spread"] == 0.15
    assert METHODS["ig"].defaults["steps"] == 5 and METHODS["ig"].defaults["n_samples"] == 2


@pytest.mark.parametrize("method", sorted(CLASSES))
def test_captum_style_classes(tiny_model, tiny_inputs, method):
    params = {"n_samples": 3} if "n_samples" in METHODS[method].defaults else {}
    obj = CLASSES[method](tiny_model)
    a = obj.attribute(tiny_inputs, target=1, generator=torch.Generator().manual_seed(0), **params)
    ref = absgrad.attribute(
        tiny_model, tiny_inputs, 1, method, generator=torch.Generator().manual_seed(0), **params
    )
    assert torch.equal(a, ref)
    assert a.shape[0] == 2 and a.shape[-2:] == (16, 16)
    m = obj.explain(tiny_inputs, target=1, generator=torch.Generator().manual_seed(0), **params)
    assert m.shape == (2, 16, 16)


def test_target_none_uses_prediction(tiny_model, tiny_inputs):
    pred = tiny_model(tiny_inputs).argmax(1)
    torch.testing.assert_close(
        absgrad.explain(tiny_model, tiny_inputs, None, "vg"),
        absgrad.explain(tiny_model, tiny_inputs, pred, "vg"),
    )


@pytest.mark.parametrize(
    ("h", "w", "remain", "mis", "kept", "swapped"),
    [
        (20, 10, 0.07, 0.10, 15, 20),  # floor(200 * 0.07) + 1 = 15 values stay
        (7, 9, 0.03, 0.10, 2, 6),  # floor(1.89) + 1 = 2
        (8, 8, 0.0, 0.25, 1, 16),  # remain 0 still keeps the maximum
    ],
)
def test_reverse_swaps_high_and_low_values(h, w, remain, mis, kept, swapped):
    maps = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    rev = absgrad.reverse(maps, remain=remain, mis=mis, generator=torch.Generator().manual_seed(1))
    n, k, m = h * w, kept, swapped
    for f_map, r_map in zip(maps, rev, strict=True):
        f, g = f_map.flatten(), r_map.flatten()
        order = f.argsort(descending=True)
        top, high, low, mid = order[:k], order[k : k + m], order[n - m :], order[k + m : n - m]
        assert (g != f).sum() > 0 and torch.equal(g[order[k - 1]], f[order[k - 1]])
        assert torch.equal(g[top], f[top]) and torch.equal(g[mid], f[mid])
        assert torch.equal(g[high].sort().values, f[low].sort().values)
        assert torch.equal(g[low].sort().values, f[high].sort().values)
        assert torch.equal(g.sort().values, f.sort().values)


def test_reverse_with_per_image_seeds_does_not_depend_on_the_batch():
    maps = torch.rand(4, 10, 10, generator=torch.Generator().manual_seed(0))
    seeds = [11, 12, 13, 14]
    whole = absgrad.reverse(maps, remain=0.07, mis=0.10, seeds=seeds)
    for i in range(4):
        alone = absgrad.reverse(maps[i : i + 1], remain=0.07, mis=0.10, seeds=seeds[i : i + 1])
        assert torch.equal(alone[0], whole[i])
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    assert torch.equal(absgrad.reverse(maps, remain=0.07, mis=0.10, generator=gens), whole)


def _reverse_by_rule(f: torch.Tensor, remain: float, mis: float, gen: torch.Generator):
    """The reversal written out: rank by value, equal values by pixel index (earlier higher);
    each side's pixels in image order, shuffled by two draws of the image's generator."""
    v = f.flatten().tolist()
    n = len(v)
    keep, m = math.floor(n * remain) + 1, math.floor(n * mis)
    ranked = sorted(range(n), key=lambda j: (-v[j], j))
    high, low = sorted(ranked[keep : keep + m]), sorted(ranked[n - m :])
    out = list(v)
    p_high, p_low = (
        torch.randperm(m, generator=gen).tolist(),
        torch.randperm(m, generator=gen).tolist(),
    )
    for j, src in zip(high, p_high, strict=True):
        out[j] = v[low[src]]
    for j, src in zip(low, p_low, strict=True):
        out[j] = v[high[src]]
    return torch.tensor(out).view_as(f)


def test_reverse_ties_follow_one_rule_whatever_the_batch():
    # many exact ties (values on a grid of 8 levels): the same result alone or in a batch of
    # 16, and the one written out by the rule (equal values rank by pixel index)
    maps = (torch.rand(16, 9, 11, generator=torch.Generator().manual_seed(2)) * 8).floor() / 8
    seeds = list(range(100, 116))
    whole = absgrad.reverse(maps, remain=0.07, mis=0.10, seeds=seeds)
    for i in range(16):
        alone = absgrad.reverse(maps[i : i + 1], remain=0.07, mis=0.10, seeds=seeds[i : i + 1])
        assert torch.equal(alone[0], whole[i])
        gen = image_generators(1, seeds=seeds[i : i + 1])[0]
        assert torch.equal(whole[i], _reverse_by_rule(maps[i], 0.07, 0.10, gen))


def test_reverse_does_not_depend_on_the_order_inside_a_side():
    # values reordered inside the swapped sides (as float rounding of nearly equal values can)
    # but not across their edges: every pixel gets its value from the same pixel as before
    f = torch.linspace(0, 1, 400).view(1, 20, 20)
    f = f[:, torch.randperm(20, generator=torch.Generator().manual_seed(3))]
    g = f.clone()
    keep, m = math.floor(400 * 0.07) + 1, math.floor(400 * 0.10)
    order = f.flatten().argsort(descending=True)
    for side in (order[keep : keep + m], order[400 - m :]):
        g.view(-1)[side] = f.view(-1)[side].flip(0)  # the side's values in reverse order
    rf = absgrad.reverse(f, remain=0.07, mis=0.10, seeds=[5])
    rg = absgrad.reverse(g, remain=0.07, mis=0.10, seeds=[5])
    source = {float(v): j for j, v in enumerate(f.flatten().tolist())}
    moved = {j for j in range(400) if rf.view(-1)[j] != f.view(-1)[j]}
    assert len(moved) == 2 * m
    for j in moved:  # the value pixel j received in g's reversal came from the same pixel
        src_f = source[float(rf.view(-1)[j])]
        src_g = (g.view(-1) == rg.view(-1)[j]).nonzero().item()
        assert src_f == src_g


def test_reverse_errors():
    with pytest.raises(ValueError, match="remain"):
        absgrad.reverse(torch.rand(1, 4, 4), remain=0.9, mis=0.1)
    with pytest.raises(ValueError, match="overlap"):  # 81 + 10 + 10 > 100
        absgrad.reverse(torch.rand(1, 10, 10), remain=0.8, mis=0.1)
    with pytest.raises(ValueError, match="one per image"):
        absgrad.reverse(torch.rand(2, 4, 4), remain=0.1, mis=0.1, seeds=[1])
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        absgrad.reverse(torch.rand(4, 4), remain=0.1, mis=0.1)
