"""absgrad.inference.engine: eager and compiled forward engines give the model's probabilities, in fixed
chunk shapes (one compilation), fall back to eager with a warning, and plug into the metrics
and the runner."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from absgrad.inference import engine as E
from absgrad.inference.engine import (
    AUTO_MIN_IMAGES,
    CACHE_ENV,
    CUDA_CANDIDATES,
    Engine,
    EngineError,
    compile_cache_dir,
    engine_costs,
    fastest_engine,
    resolve_engine,
    use_compile_cache,
)
from support.engines import assert_falls_back_once, assert_metrics_agree, eager_logits


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    )


class CountingBackend:
    """A torch.compile backend that records every graph it is asked to compile (runs it as is)."""

    def __init__(self) -> None:
        self.shapes: list[set[tuple[int, ...]]] = []  # per graph: the shapes of its inputs

    def __call__(self, gm, example_inputs):
        self.shapes.append({tuple(t.shape) for t in example_inputs})
        return gm.forward


def failing_backend(gm, example_inputs):
    raise RuntimeError("no C++ compiler here")


@pytest.fixture
def model():
    m = tiny_model()
    m.train()  # the engine must run it in eval mode and restore the flag
    return m


def test_eager_engine_equals_the_model_in_eval_mode_and_restores_flags(model):
    x = torch.randn(7, 3, 8, 8)
    eng = Engine(model, "eager", chunk=3)
    out = eng(x)
    assert torch.allclose(out, eager_logits(model, x), atol=1e-6)
    assert model.training and all(m.training for m in model.modules())
    assert eng.stats["chunks"] == 3 and eng.stats["images"] == 7 and eng.stats["padded"] == 0


def test_a_model_in_eval_mode_is_not_switched_at_each_call(monkeypatch):
    m = tiny_model().eval()
    switched: list[bool] = []
    train = nn.Module.train
    monkeypatch.setattr(
        nn.Module, "train", lambda self, mode=True: switched.append(mode) or train(self, mode)
    )
    eng = Engine(m, "eager", chunk=2)
    x = torch.randn(5, 3, 8, 8)
    ref = eager_logits(copy.deepcopy(m), x)
    switched.clear()
    assert torch.allclose(eng(x), ref, atol=1e-6)
    assert switched == []  # the runner's model: its flags are read, never set
    # one submodule back in training mode: the call runs in eval mode and sets only it back
    m[1].train()
    assert torch.allclose(eng(x), ref, atol=1e-6)
    assert [mod.training for mod in m.modules()] == [mod is m[1] for mod in m.modules()]


def test_compiled_engine_pads_to_one_shape_and_compiles_once(model):
    backend = CountingBackend()
    eng = Engine(model, "compile", chunk=4, backend=backend)
    for n in (4, 7, 1, 9):  # full, full + short, short, ...
        x = torch.randn(n, 3, 8, 8)
        out = eng(x)
        assert out.shape == (n, 5)
        assert torch.allclose(out, eager_logits(model, x), atol=1e-5)
    assert len(backend.shapes) == 1  # one graph: no recompilation
    assert (4, 3, 8, 8) in backend.shapes[0]
    assert eng.compiled and eng.stats["padded"] == (4 - 3) + (4 - 1) + (4 - 1)


def test_compile_failure_falls_back_to_eager_with_a_warning(model):
    eng = Engine(model, "compile", chunk=4, backend=failing_backend)
    assert_falls_back_once(eng, model, torch.randn(5, 3, 8, 8), "torch.compile failed.*eagerly")


def test_model_errors_are_not_hidden_by_the_fallback(model):
    eng = Engine(model, "compile", chunk=4, backend=CountingBackend())
    with pytest.raises(RuntimeError):
        eng(torch.randn(2, 5, 8, 8))  # wrong channel count: the eager model fails too


def test_bad_settings_name_the_problem(model):
    with pytest.raises(EngineError, match="engine must be one of"):
        Engine(model, "jit")
    with pytest.raises(EngineError, match="precision must be"):
        Engine(model, "eager", precision="fp8")
    with pytest.raises(EngineError, match="chunk"):
        Engine(model, "eager", chunk=0)
    with pytest.raises(EngineError, match="needs the run size"):
        Engine(model, "auto")
    with pytest.raises(EngineError, match="nn.Module"):
        Engine(lambda x: x, "eager")


def test_auto_compiles_only_runs_long_enough_to_repay_it(monkeypatch):
    # a CPU without ONNX Runtime, or MPS: compile when the run repays it
    for device, ort_installed in (("mps", True), ("cpu", False)):
        monkeypatch.setattr("absgrad.inference.ort.available", lambda v=ort_installed: v)
        assert resolve_engine("auto", AUTO_MIN_IMAGES - 1, device=device) == "eager"
        assert resolve_engine("auto", AUTO_MIN_IMAGES, device=device) == "compile"
    assert resolve_engine("eager", 10_000) == "eager"
    assert resolve_engine("compile", 1) == "compile"


def test_auto_uses_onnx_runtime_on_a_cpu_in_fp32(monkeypatch):
    monkeypatch.setattr("absgrad.inference.ort.available", lambda: True)
    assert resolve_engine("auto", 1, device="cpu") == "onnx"  # its set-up takes about a second
    assert resolve_engine("auto", AUTO_MIN_IMAGES, device="cpu", precision="bf16") == "compile"


def test_auto_on_cuda_takes_the_engine_that_measures_fastest():
    asked = []

    def measure(costs):
        def run(kinds):
            asked.append(kinds)
            return {k: costs[k] for k in kinds if k in costs}

        return run

    many = AUTO_MIN_IMAGES * 10  # the run's size does not matter: nothing is compiled
    graphs_win = measure({"eager": 100e-6, "cudagraph": 60e-6})
    assert resolve_engine("auto", many, device="cuda:0", measure=graphs_win) == "cudagraph"
    assert asked == [CUDA_CANDIDATES] and "compile" not in CUDA_CANDIDATES
    eager_wins = measure({"eager": 60e-6, "cudagraph": 100e-6})
    assert resolve_engine("auto", 1, device="cuda", measure=eager_wins) == "eager"
    close = measure({"eager": 101e-6, "cudagraph": 100e-6})  # within 3%: eager, nothing to set up
    assert resolve_engine("auto", 1, device="cuda", measure=close) == "eager"
    failed = measure({"eager": 100e-6})  # the capture failed: not measured
    assert resolve_engine("auto", 1, device="cuda", measure=failed) == "eager"
    assert resolve_engine("auto", many, device="cuda") == "eager"  # nothing measured
    assert resolve_engine("cudagraph", 1, device="cuda", measure=eager_wins) == "cudagraph"
    assert fastest_engine({}) == "eager"
    assert fastest_engine({"cudagraph": 2.0, "compile": 1.0}) == "compile"


class FakeGraph:
    """Stands in for :class:`absgrad.inference.cudagraph.GraphedForward` on a CPU: runs the
    model eagerly on the capture's shape (``scale`` != 1: its replay disagrees with eager)."""

    scale = 1.0
    shapes: list[tuple[int, ...]] = []

    def __init__(self, model, example, autocast):
        from absgrad.inference.cudagraph import GraphError

        if self.scale != 1.0:  # as the real check finds a replay that disagrees
            raise GraphError("the replayed graph's probabilities differ")
        self.model, self.shape, self.difference = model, tuple(example.shape), 0.0

    def __call__(self, x):
        assert tuple(x.shape) == self.shape  # one shape: padded to the chunk
        FakeGraph.shapes.append(tuple(x.shape))
        with torch.inference_mode():
            return self.model(x)


@pytest.fixture
def on_cuda(monkeypatch):
    """Engines take the model for a CUDA one, and capture it with :class:`FakeGraph`."""
    monkeypatch.setattr(E, "model_device", lambda model: torch.device("cuda"))
    monkeypatch.setattr("absgrad.inference.cudagraph.GraphedForward", FakeGraph)
    FakeGraph.shapes = []


def test_cudagraph_engine_replays_one_shape_and_equals_eager(model, on_cuda):
    eng = Engine(model, "cudagraph", chunk=4)
    for n in (4, 7, 1):
        x = torch.randn(n, 3, 8, 8)
        assert torch.allclose(eng(x), eager_logits(model, x), atol=1e-6)
    assert eng.compiled and eng.kind == "cudagraph"
    assert set(FakeGraph.shapes) == {(4, 3, 8, 8)} and eng.stats["padded"] == 1 + 3
    assert "graph_difference" in eng.stats


def test_cudagraph_capture_failures_fall_back_to_eager(model, on_cuda, monkeypatch):
    monkeypatch.setattr(FakeGraph, "scale", 2.0)  # the replay disagrees with eager
    eng = Engine(model, "cudagraph", chunk=4)
    assert_falls_back_once(eng, model, torch.randn(5, 3, 8, 8), "CUDA graph capture failed")
    # the real capture on CPU tensors: refused, and the engine runs eagerly
    monkeypatch.undo()
    monkeypatch.setattr(E, "model_device", lambda model: torch.device("cuda"))
    eng = Engine(model, "cudagraph", chunk=4)
    assert_falls_back_once(eng, model, torch.randn(5, 3, 8, 8), "CUDA graph.*need a CUDA device")


def test_engine_costs_time_each_engine_and_leave_out_the_failed(model, on_cuda, monkeypatch):
    costs = engine_costs(model.eval(), (3, 8, 8), "cpu", 4, ("eager", "cudagraph"), repeats=2)
    assert set(costs) == {"eager", "cudagraph"} and all(v > 0 for v in costs.values())
    monkeypatch.setattr(FakeGraph, "scale", 2.0)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        costs = engine_costs(model, (3, 8, 8), "cpu", 4, ("eager", "cudagraph"), repeats=1)
    assert set(costs) == {"eager"}


def test_cudagraph_engine_needs_a_cuda_model(model):
    with pytest.raises(EngineError, match="'cudagraph' needs the model on a CUDA device"):
        Engine(model, "cudagraph")


def test_bf16_is_explicit_and_moves_probabilities_little(model):
    x = torch.randn(6, 3, 8, 8)
    p32 = Engine(model, "eager")(x).softmax(1)
    p16 = Engine(model, "eager", precision="bf16")(x).softmax(1)
    assert p16.dtype == torch.float32
    diff = float((p16 - p32).abs().max())
    assert 0 < diff < 0.05  # bf16 does change the numbers, by little


def test_metrics_accept_an_engine(model):
    torch.manual_seed(1)
    assert_metrics_agree(model, Engine(model, "compile", chunk=8, backend=CountingBackend()))


def test_cache_dir_follows_absgrad_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("ABSGRAD_CACHE", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "inductor"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"  # the user's setting wins


def test_cache_dir_is_absgrad_s_after_torch_wrote_its_default(monkeypatch, tmp_path):
    """Torch writes its default folder into $TORCHINDUCTOR_CACHE_DIR the first time it asks
    for it (importing timm does): that value is not the user's choice."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir

    monkeypatch.setenv(CACHE_ENV, default_cache_dir())
    monkeypatch.setenv("ABSGRAD_CACHE", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "inductor"
    assert use_compile_cache() == tmp_path / "inductor"
    assert cache_dir() == str(tmp_path / "inductor")  # where inductor now writes


@pytest.mark.slow
def test_inductor_engine_matches_eager_probabilities_and_caches_on_disk(monkeypatch, tmp_path):
    """The real compiler (inductor, C++ on a CPU) on a tiny model: probabilities within 1e-5
    of eager fp32, and the compiled kernels land in the cache folder."""
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("ABSGRAD_CACHE", str(tmp_path))
    model = tiny_model().eval()
    x = torch.randn(6, 3, 8, 8)
    eng = Engine(model, "compile", chunk=4)
    got = eng(x).softmax(1)
    if not eng.compiled:
        pytest.skip("torch.compile does not work on this machine (the engine fell back)")
    want = eager_logits(model, x).softmax(1)
    assert float((got - want).abs().max()) < 1e-5
    assert any((tmp_path / "inductor").rglob("*")), "no compiled artefact in the cache folder"
