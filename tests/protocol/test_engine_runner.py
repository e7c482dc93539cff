"""The runner's forward engine: ``engine: compile`` scores as eager does, ``auto`` resolves by
run size, and the choice is recorded in run.json and reaches the CLI."""

from __future__ import annotations

import json

import pytest

import absgrad.inference.engine as E
from absgrad.cli import main
from absgrad.protocol import build_context, make_config
from absgrad.protocol.config import ConfigError
from absgrad.protocol.runner import plan_run, run_protocol
from absgrad.protocol.worker import run_unit


class TraceOnly:
    """A compile backend that traces the graph and runs it as traced (no C++ compile, fast);
    the real compiler is checked in tests/inference/test_engine.py."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


RAW = {
    "case": "synthetic",
    "limit": 3,
    "batch_size": 2,
    "eval_batch_size": 8,
    "maps": ["sg", "gb", "gradcam"],
}


def assert_units_agree(config_a, ctx_a, config_b, ctx_b) -> None:
    """Every unit of the run scores the same (to 1e-5) with both contexts' engines."""
    units, _ = plan_run(config_a, ctx_a, None)
    for unit in units:
        a = run_unit(config_a, unit, context=ctx_a).scores
        b = run_unit(config_b, unit, context=ctx_b).scores
        for label in a:
            for metric in ("rcap", "dauc", "iauc"):
                assert b[label][metric] == pytest.approx(a[label][metric], abs=1e-5)


def test_compiled_engine_scores_equal_eager(monkeypatch):
    backend = TraceOnly()
    monkeypatch.setattr(E, "DEFAULT_BACKEND", backend)
    eager, compiled = (
        make_config({**RAW, "engine": "eager"}),
        make_config({**RAW, "engine": "compile"}),
    )
    assert eager.config_hash() == compiled.config_hash()  # scores agree: runs may mix them
    ctx_e, ctx_c = build_context(eager), build_context(compiled)
    assert not ctx_e.forward.compiled and ctx_c.forward.compiled
    assert_units_agree(eager, ctx_e, compiled, ctx_c)
    assert backend.graphs == 1  # one chunk shape over every unit: compiled once
    assert ctx_c.forward.stats["padded"] > 0  # short chunks were padded, not recompiled


def test_auto_engine_is_resolved_by_run_size_and_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "DEFAULT_BACKEND", TraceOnly())
    monkeypatch.setattr(E, "AUTO_MIN_IMAGES", 3)
    monkeypatch.setattr(
        "absgrad.inference.ort.available", lambda: False
    )  # as on a CPU without onnxruntime
    for limit, want in ((2, "eager"), (3, "compile")):
        config = make_config({**RAW, "limit": limit, "select": False})
        assert config.engine == "auto"
        meta = run_protocol(config, tmp_path / f"run{limit}", quiet=True)
        assert meta["sessions"][-1]["engine"] == want
        assert meta["config"]["engine"] == "auto"  # the config as asked; the session says what ran


def test_onnx_engine_scores_equal_eager_and_auto_picks_it_on_a_cpu(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    eager, onnx = make_config({**RAW, "engine": "eager"}), make_config({**RAW, "engine": "onnx"})
    assert eager.config_hash() == onnx.config_hash()
    ctx_e, ctx_o = build_context(eager), build_context(onnx)
    assert_units_agree(eager, ctx_e, onnx, ctx_o)
    assert ctx_o.forward.kind == "onnx" and ctx_o.forward.compiled
    assert ctx_o.forward.stats["padded"] > 0
    meta = run_protocol(make_config({**RAW, "select": False}), tmp_path / "run", quiet=True)
    assert meta["sessions"][-1]["engine"] == "onnx"


def test_engine_options_are_validated_and_bf16_is_hashed():
    base = make_config({"case": "synthetic"})
    assert "precision" not in base.hash_dict() and "engine" not in base.hash_dict()
    assert (
        make_config({"case": "synthetic", "precision": "bf16"}).config_hash() != base.config_hash()
    )
    with pytest.raises(ConfigError, match="'engine'.*auto, eager, compile, onnx or cudagraph"):
        make_config({"case": "synthetic", "engine": "jit"})
    with pytest.raises(ConfigError, match="'precision'.*fp32 or bf16"):
        make_config({"case": "synthetic", "precision": "fp16"})


def test_cli_engine_flag_reaches_the_run(tmp_path):
    out = tmp_path / "run"
    argv = [
        "run",
        "--case",
        "synthetic",
        "--methods",
        "vg",
        "--metrics",
        "rcap",
        "--limit",
        "2",
        "--quiet",
        "--no-report",
        "--engine",
        "eager",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["engine"] == "eager" and meta["sessions"][-1]["engine"] == "eager"
