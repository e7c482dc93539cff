"""One torch-free place for every name: each registry holds exactly the names of
:mod:`absgrad.names`, and ``absgrad list``, ``--help``, ``report`` and ``compare`` import no heavy
module (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from absgrad import names

SRC = Path(__file__).resolve().parents[1] / "src"
FIX = "absgrad/names.py must declare exactly the registry's entries"
HEAVY = ("torch", "torchvision", "timm", "matplotlib", "numpy", "PIL", "skimage")


def test_method_registry_holds_the_declared_methods_with_their_titles():
    from absgrad.methods import METHODS

    assert {name: m.title for name, m in METHODS.items()} == names.METHODS, FIX
    assert list(METHODS) == list(names.METHODS)


def test_metric_registry_holds_the_declared_metrics():
    from absgrad.metrics import METRICS

    assert list(METRICS) == list(names.METRICS), FIX
    for key, m in METRICS.items():
        info = names.METRICS[key]
        assert (m.title, m.latex, m.higher_is_better, m.needs_mask) == (
            info.title,
            info.latex,
            info.higher_is_better,
            info.needs_mask,
        )


def test_case_registry_holds_the_declared_cases():
    from absgrad.cases import CASES

    assert tuple(CASES) == names.CASES, FIX


def test_processing_hook_and_objective_registries_hold_the_declared_names():
    from absgrad.methods.guided_backprop import HOOKS
    from absgrad.methods.processing import PROCESSINGS, SAMPLE_PART

    assert tuple(PROCESSINGS) == names.PROCESSINGS == tuple(SAMPLE_PART)
    assert tuple(HOOKS) == tuple(names.GB_HOOKS)
    assert set(names.GB_HOOKS.values()) <= set(names.PROCESSINGS)


def test_every_declared_name_is_accepted_and_others_refused():
    import torch

    from absgrad.methods.gradients import class_scores
    from absgrad.methods.samplers import path_rule
    from absgrad.params import ParamError, check_param

    logits, target = torch.randn(2, 3), torch.tensor([0, 2])
    for objective in names.OBJECTIVES:
        assert class_scores(logits, target, objective).shape == (2,)
    with pytest.raises(ValueError, match="unknown objective"):
        class_scores(logits, target, "softmax")
    for rule in names.PATH_RULES:
        alphas, weights = path_rule(4, rule)
        assert alphas.shape == weights.shape == (4,)
    with pytest.raises(ValueError, match="unknown rule"):
        path_rule(4, "simpson")
    for agg in ("processing", "aggregation", "objective", "rule", "hook"):
        with pytest.raises(ParamError):
            check_param(agg, "no-such-name")


def test_engine_names_are_the_engines_the_config_and_cli_accept():
    from absgrad.cli import build_parser
    from absgrad.inference.engine import check_engine, check_precision
    from absgrad.protocol.config import make_config

    for engine in names.ENGINES:
        assert check_engine(engine) == engine
        assert make_config({"case": "synthetic", "engine": engine}, {}).engine == engine
    for precision in names.PRECISIONS:
        assert check_precision(precision) == precision
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {a.dest: a.choices for a in run._actions}
    assert tuple(flags["engine"]) == names.ENGINES
    assert tuple(flags["precision"]) == names.PRECISIONS


@pytest.mark.parametrize("package", ["absgrad.protocol", "absgrad.report", "absgrad.metrics"])
def test_lazy_package_exports_resolve(package):
    import importlib

    mod = importlib.import_module(package)
    assert sorted(mod.__all__) == sorted(mod._EXPORTS)
    for name in mod.__all__:
        value = getattr(mod, name)
        assert value is not None and not isinstance(value, type(mod)), (package, name)


_PROBE = """
import json, runpy, sys
sys.argv = ["absgrad", *json.loads(sys.argv[1])]
sys.stdout.flush()
try:
    runpy.run_module("absgrad.cli", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r)}),
      file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["run", "--help"],
        ["list", "methods"],
        ["list", "metrics"],
        ["list", "maps"],
        ["list", "cases"],
        ["list", "configs"],
    ],
)
def test_cli_start_up_imports_no_heavy_module(argv):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE % (HEAVY,), json.dumps(argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), proc.stderr
    assert proc.stdout.strip(), "the command printed nothing"
    assert report["loaded"] == [], f"`absgrad {' '.join(argv)}` imported {report['loaded']}"
