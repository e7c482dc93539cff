"""Scoring a unit's maps in one stream equals scoring each map alone, in full chunks."""

from __future__ import annotations

import pytest
import torch

from absgrad import metrics as M
from absgrad.metrics.dedupe import ProbCache
from absgrad.protocol.scoring import EvalSettings, score_many, score_maps


@pytest.fixture
def unit():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 3, 16, 16, generator=g)
    target = torch.tensor([0, 3, 1])
    maps = {f"m{i}": torch.rand(3, 16, 16, generator=g) for i in range(4)}
    maps["flat"] = torch.zeros(3, 16, 16)  # all ties: no RCAP percentile is valid
    return x, target, maps


def test_stream_equals_each_metric_alone_and_runs_full_chunks(tiny_model, unit):
    x, target, maps = unit
    settings = EvalSettings(normalization=M.SYMMETRIC, batch_size=8, auc_steps=6)
    clean = M.target_probs(tiny_model, x, target)
    blur = M.target_probs(tiny_model, M.blurred(x), target)
    sizes: list[int] = []
    handle = tiny_model.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    cache = ProbCache()
    out = score_many(
        tiny_model,
        x,
        target,
        maps,
        ("rcap", "dauc", "iauc"),
        settings,
        clean_probs=clean,
        blurred_probs=blur,
        cache=cache,
    )
    handle.remove()
    per_map = 3 * (5 + 5 + 5)  # 5 RCAP percentiles + 5 deletion + 5 insertion points (r > 0)
    assert cache.stats["requested"] == len(maps) * per_map
    # each distinct perturbed image once (the flat map's selections repeat: absgrad.metrics.dedupe)
    assert sum(sizes) == cache.stats["computed"] < len(maps) * per_map
    assert all(s == 8 for s in sizes[:-1])
    for label, m in maps.items():
        r = M.rcap(tiny_model, x, target, m, normalization=M.SYMMETRIC)
        a = M.deletion_insertion(tiny_model, x, target, m, steps=6, normalization=M.SYMMETRIC)
        got = out[label]
        assert got["rcap"] == pytest.approx(r.score.tolist(), abs=1e-6)
        assert torch.allclose(torch.tensor(got["rcap_prob"]).double(), r.prob.double(), atol=1e-6)
        assert got["rcap_valid"] == r.valid.tolist()
        assert got["dauc"] == pytest.approx(a.dauc_per_image.tolist(), abs=1e-6)
        assert got["iauc"] == pytest.approx(a.iauc_per_image.tolist(), abs=1e-6)
        assert torch.allclose(
            torch.tensor(got["deletion"]).double(), a.deletion.double(), atol=1e-6
        )
    assert out["flat"]["rcap"] == [0.0, 0.0, 0.0]


def test_single_map_scoring_is_the_stream_of_one(tiny_model, unit):
    x, target, maps = unit
    settings = EvalSettings(normalization=M.SYMMETRIC, batch_size=5)
    one = score_maps(tiny_model, x, target, maps["m1"], ("rcap", "iauc"), settings)
    many = score_many(tiny_model, x, target, maps, ("rcap", "iauc"), settings)
    assert set(one) == {
        "rcap",
        "rcap_hit",
        "rcap_prob",
        "rcap_valid",
        "deletion",
        "insertion",
        "iauc",
    }
    for key, value in one.items():
        assert torch.allclose(
            torch.tensor(many["m1"][key]).double(), torch.tensor(value).double(), atol=1e-6
        )


def test_bad_map_is_named(tiny_model, unit):
    x, target, maps = unit
    settings = EvalSettings(normalization=M.SYMMETRIC)
    with pytest.raises(ValueError, match="map 'neg'.*negative"):
        score_many(tiny_model, x, target, {**maps, "neg": -maps["m0"]}, ("rcap",), settings)
    with pytest.raises(ValueError, match="clean_probs must have shape"):
        score_many(tiny_model, x, target, maps, ("dauc",), settings, clean_probs=torch.ones(2))
