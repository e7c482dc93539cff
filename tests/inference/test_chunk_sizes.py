"""Choosing the forward chunk size by measurement (eval_batch_size: auto)."""

from __future__ import annotations

import json

import pytest
import torch

from absgrad.inference.chunk_sizes import (
    CPU_CANDIDATES,
    auto_eval_batch_size,
    best_chunk_size,
    forward_cost,
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
