"""Choosing the forward and gradient chunk sizes by measurement (eval_batch_size and
grad_batch_size: auto)."""

from __future__ import annotations

import json

import pytest
import torch

from absgrad.inference.chunk_sizes import (
    CPU_CANDIDATES,
    GPU_GRAD_CANDIDATES,
    auto_eval_batch_size,
    auto_grad_batch_size,
    best_chunk_size,
    forward_cost,
    gradient_cost,
)
from absgrad.protocol import make_config, run_protocol
from absgrad.protocol.config import ConfigError


def recorded(costs: dict[int, float], oom_from: int | None = None):
    tried: list[int] = []

    def cost(size: int) -> float:
        tried.append(size)
        if oom_from is not None and size >= oom_from:
            raise torch.cuda.OutOfMemoryError("out of memory")
        return costs[size]

    return cost, tried


def test_smallest_size_within_tolerance_of_the_best_and_early_stop():
    cost, tried = recorded({4: 1.0, 8: 0.6, 16: 0.5, 32: 0.49, 64: 0.7, 128: 0.1})
    size, costs = best_chunk_size(cost, [128, 4, 8, 16, 32, 64])
    assert size == 16  # 0.5 is within 3% of 0.49 and holds half the memory
    assert tried == [4, 8, 16, 32, 64]  # 64 costs > 1.25x the best: 128 is not tried
    assert costs == {4: 1.0, 8: 0.6, 16: 0.5, 32: 0.49, 64: 0.7}
    size, _ = best_chunk_size(
        recorded({4: 1.0, 8: 0.6, 16: 0.5, 32: 0.49, 64: 0.7})[0], [4, 8, 16, 32, 64], tolerance=0.0
    )
    assert size == 32


def test_out_of_memory_ends_the_search():
    cost, tried = recorded({16: 0.3, 32: 0.2, 64: 0.1}, oom_from=64)
    size, costs = best_chunk_size(cost, [16, 32, 64, 128])
    assert size == 32 and 64 not in costs and tried == [16, 32, 64]
    with pytest.raises(RuntimeError, match="no chunk size"):
        best_chunk_size(recorded({}, oom_from=1)[0], [16])


def test_bad_candidates():
    with pytest.raises(ValueError, match="positive chunk sizes"):
        best_chunk_size(lambda s: 1.0, [0, 4])
    with pytest.raises(ValueError, match="positive chunk sizes"):
        best_chunk_size(lambda s: 1.0, [])


def test_real_measurement_on_a_small_model(tiny_model):
    cost = forward_cost(tiny_model, (3, 16, 16), "cpu", repeats=1)
    assert cost(4) > 0
    size, costs = auto_eval_batch_size(tiny_model, (3, 16, 16), "cpu")
    assert size in CPU_CANDIDATES and size in costs and all(v > 0 for v in costs.values())


def test_config_takes_auto_and_names_bad_values():
    assert make_config({"case": "synthetic", "eval_batch_size": "auto"}).eval_batch_size == "auto"
    with pytest.raises(ConfigError, match="eval_batch_size.*integer >= 1 or 'auto'"):
        make_config({"case": "synthetic", "eval_batch_size": "fast"})
    with pytest.raises(ConfigError, match="eval_batch_size"):
        make_config({"case": "synthetic", "eval_batch_size": 0})


def test_auto_run_uses_one_measured_size_and_matches_a_fixed_run(tmp_path):
    raw = {"case": "synthetic", "limit": 2, "maps": ["sg", "gag-85"], "metrics": ["rcap", "dauc"]}
    auto = run_protocol(
        make_config({**raw, "eval_batch_size": "auto"}), tmp_path / "auto", quiet=True
    )
    size = auto["sessions"][-1]["eval_batch_size"]
    assert size in CPU_CANDIDATES
    fixed = run_protocol(
        make_config({**raw, "eval_batch_size": size}), tmp_path / "fixed", quiet=True
    )
    assert fixed["config_hash"] == auto["config_hash"]

    def scores(run: str) -> dict:
        return {
            f.name: json.loads(f.read_text())["scores"]
            for f in (tmp_path / run / "units").glob("*.json")
        }

    assert scores("auto") and scores("auto") == scores("fixed")


def test_gradient_chunk_auto_measures_on_cuda_only(monkeypatch, tiny_model):
    from absgrad.inference import chunk_sizes

    # a CPU (or MPS): the unit's image batch, nothing measured
    assert auto_grad_batch_size(tiny_model, (3, 16, 16), "cpu", 4) == (4, {})
    assert auto_grad_batch_size(tiny_model, (3, 16, 16), "mps", 8) == (8, {})
    # CUDA: from the batch up, the smallest size within 3% of the best, stopping at OOM
    cost, tried = recorded({16: 0.6, 32: 0.35, 64: 0.3, 128: 0.295}, oom_from=256)
    monkeypatch.setattr(chunk_sizes, "gradient_cost", lambda model, shape, device: cost)
    size, costs = auto_grad_batch_size(tiny_model, (3, 16, 16), "cuda", 16)
    assert size == 64 and tried == [16, 32, 64, 128, 256] and 256 not in costs
    assert set(GPU_GRAD_CANDIDATES) >= set(costs)
    cost, tried = recorded({24: 0.5, 32: 0.5, 64: 0.9})  # no gain above the batch: keep it
    monkeypatch.setattr(chunk_sizes, "gradient_cost", lambda model, shape, device: cost)
    assert auto_grad_batch_size(tiny_model, (3, 16, 16), "cuda:0", 24)[0] == 24
    assert tried == [24, 32, 64]  # from the batch up; 64 costs > 1.25x the best: stop


def test_real_gradient_measurement_on_a_small_model(tiny_model):
    cost = gradient_cost(tiny_model, (3, 16, 16), "cpu", repeats=1)
    assert cost(2) > 0 and cost(4) > 0


def test_config_takes_a_gradient_chunk_that_is_not_hashed():
    base = make_config({"case": "synthetic"})
    assert base.grad_batch_size == "auto" and "grad_batch_size" not in base.hash_dict()
    assert make_config({"case": "synthetic", "grad_batch_size": 64}).config_hash() == (
        base.config_hash()
    )
    with pytest.raises(ConfigError, match="grad_batch_size.*integer >= 1 or 'auto'"):
        make_config({"case": "synthetic", "grad_batch_size": 0})
