"""The ``deterministic`` run option: the switches, where they are set (every worker process,
before the model), that an in-process run gives the caller's switches back, and ``device:
auto`` resolved once and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from absgrad.protocol.config import make_config
from absgrad.protocol.executors import LocalExecutor
from absgrad.protocol.plan import group_specs, make_plan
from absgrad.protocol.runner import run_protocol
from absgrad.protocol.worker import build_context, run_unit
from absgrad.utils import determinism
from absgrad.utils.determinism import CUBLAS_ENV, current, is_deterministic, kept

FAST = {"maps": ["vg"], "metrics": ["rcap"], "limit": 2, "select": False}


@pytest.fixture
def default_switches(monkeypatch):
    """PyTorch's defaults in this process for the test, the previous switches afterwards."""
    monkeypatch.delenv(CUBLAS_ENV, raising=False)
    with kept():
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = False
        yield current()


def test_set_deterministic_sets_each_switch_and_kept_gives_them_back(default_switches):
    assert not is_deterministic()
    with kept():
        determinism.set_deterministic(True)
        s = current()
        assert torch.are_deterministic_algorithms_enabled() and s.warn_only
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert s.tf32 == ("legacy", False, False)  # neither convolutions nor matmuls in TF32
        assert os.environ[CUBLAS_ENV] == ":4096:8" and is_deterministic()
    assert current() == default_switches and CUBLAS_ENV not in os.environ
    determinism.set_deterministic(False)  # off: the process's own settings, untouched
    assert current() == default_switches


def test_a_compiled_engine_gets_the_mode_the_eager_path_set_alone(default_switches):
    # set_deterministic sets the process flag without importing the inductor (an eager run
    # needs none of it); a compiled engine copies the flag into the inductor's config first
    import torch._inductor.config as inductor_config

    from absgrad.inference.engine import Engine

    before = inductor_config.deterministic
    try:
        for on in (True, False):
            torch._C._set_deterministic_algorithms(on, warn_only=True)
            inductor_config.deterministic = not on
            Engine(torch.nn.Linear(2, 2).eval(), kind="compile", backend="eager")
            assert inductor_config.deterministic is on
    finally:
        inductor_config.deterministic = before


def test_a_users_cublas_setting_is_kept(default_switches, monkeypatch):
    monkeypatch.setenv(CUBLAS_ENV, ":16:8")
    with kept():
        determinism.set_deterministic(True)
        assert os.environ[CUBLAS_ENV] == ":16:8" and is_deterministic()
    assert os.environ[CUBLAS_ENV] == ":16:8"


def _unit(config):
    ctx = build_context(config)
    (group,) = group_specs(ctx.specs)
    ids = [ctx.case.samples()[i].id for i in (0, 1)]
    return ctx, make_plan(config, [group], [0, 1], ids)[0]


@pytest.mark.parametrize("on", [True, False])
def test_the_worker_sets_the_switches_for_every_unit(default_switches, on):
    config = make_config({"case": "synthetic"}, {**FAST, "deterministic": on})
    ctx, unit = _unit(config)
    assert is_deterministic() is on  # set before the model was loaded
    with kept():
        torch.use_deterministic_algorithms(False)  # e.g. changed by other code in between
        run_unit(config, unit, context=ctx)
        assert is_deterministic() is on


def test_a_fresh_worker_process_sets_them_before_loading_the_model():
    """What a subprocess or Ray worker does first: build its context. The model's first
    forward pass sees the switches already set (cuBLAS reads its setting then)."""
    code = (
        "import json, os, torch\n"
        "from absgrad.protocol.config import make_config\n"
        "from absgrad.protocol.worker import build_context\n"
        "from absgrad.cases.synthetic import SynthNet\n"
        "from absgrad.utils.determinism import is_deterministic\n"
        "seen = []\n"
        "forward = SynthNet.forward\n"
        "def probe(self, x):\n"
        "    seen.append(is_deterministic())\n"
        "    return forward(self, x)\n"
        "SynthNet.forward = probe\n"
        "before = is_deterministic()\n"
        "ctx = build_context(make_config({'case': 'synthetic'}, {'maps': ['vg']}))\n"
        "ctx.model(torch.zeros(1, 3, 32, 32))\n"
        "print(json.dumps([before, seen, os.environ.get('CUBLAS_WORKSPACE_CONFIG')]))\n"
    )
    env = dict(os.environ)  # with the test's private ABSGRAD_CACHE
    env.pop(CUBLAS_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, seen, workspace = json.loads(proc.stdout.strip().splitlines()[-1])
    assert before is False and seen and all(seen) and workspace == ":4096:8"


class ProbingExecutor(LocalExecutor):
    """The local executor, noting this process's switches while each unit runs."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def run(self, units, worker, on_result) -> None:
        def probed(unit):
            result = worker(unit)
            self.seen.append(is_deterministic())
            return result

        super().run(units, probed, on_result)


def test_an_in_process_run_records_the_option_and_gives_the_switches_back(
    default_switches, tmp_path
):
    ex = ProbingExecutor()
    config = make_config({"case": "synthetic"}, FAST)
    assert config.deterministic is True and config.device == "auto"  # the defaults
    meta = run_protocol(config, tmp_path / "run", executor=ex, quiet=True)
    assert ex.seen and all(ex.seen)
    assert current() == default_switches
    expected = "cuda" if torch.cuda.is_available() else "cpu"  # MPS: not on a test machine
    assert meta["config"]["device"] == expected and meta["config"]["deterministic"] is True
    assert meta["sessions"][-1]["deterministic"] is True
    assert meta["sessions"][-1]["device"].startswith(expected)
    stored = json.loads((tmp_path / "run" / "run.json").read_text())
    assert stored["config"]["device"] == expected
    # not part of the run's identity: the same run resumes without the option
    off = make_config({"case": "synthetic"}, {**FAST, "deterministic": False})
    assert off.config_hash() == config.config_hash()
    meta = run_protocol(off, tmp_path / "run", quiet=True)
    assert meta["sessions"][-1]["deterministic"] is False and meta["status"] == "complete"
