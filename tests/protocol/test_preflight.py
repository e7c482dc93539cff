"""Every requested map is checked against the model before any work: a map the model cannot
give stops the run at once with one line naming it and why, or is left out with a warning
(``--skip-unsupported``), never failing after other units were stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from absgrad.methods.guided_backprop import guided_backprop_support, unreachable_activations
from support.cli_errors import assert_user_error
from support.runs import cli

FACTORY = '''
import torch
from torch import nn
from torch.nn import functional as F


class Functional(nn.Module):
    """A classifier whose only activations are F.relu calls in forward."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def make(num_classes=3):
    torch.manual_seed(0)
    return Functional(num_classes)
'''


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.GELU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(F.relu(self.act(self.conv(x))).mean(dim=(2, 3)))


def test_activation_functions_outside_modules_are_found():
    x = torch.zeros(1, 3, 16, 16)
    assert unreachable_activations(Mixed(), x) == ["relu"]  # F.gelu inside nn.GELU is reached
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    seq(x)
    assert unreachable_activations(seq, x) == []
    problem, caveat = guided_backprop_support(Mixed(), x)
    assert problem is None and "1 activation function(s)" in caveat and "relu" in caveat


def test_a_model_without_activation_modules_cannot_be_guided():
    ns: dict = {}
    exec(FACTORY, ns)
    problem, _ = guided_backprop_support(ns["make"](), torch.zeros(1, 3, 16, 16))
    assert problem is not None and "no activation modules" in problem


@pytest.fixture(scope="module")
def functional_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("functional")
    (root / "factory.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (root / "data" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            root / "data" / c / "x.png"
        )
    return root


def _args(root, out):
    return [
        "run", "--data", str(root / "data"), "--model", f"{root / 'factory.py'}:make",
        "--size", "16", "--no-select", "--limit", "1", "--n-samples", "2", "--quiet",
        "--methods", "vg,gb,gb-r", "--metrics", "rcap", "--no-report", "--out", str(out),
    ]  # fmt: skip


def test_guided_backprop_on_functional_relus_stops_before_any_work(functional_folder, tmp_path):
    out = tmp_path / "run"
    proc = cli(_args(functional_folder, out))
    line = assert_user_error(proc.returncode, proc.stderr, "no activation modules")
    assert line.startswith("absgrad: error: map 'gb'") and "--skip-unsupported" in line
    assert proc.stderr.strip() == line  # --quiet: the error is all it prints
    assert not list(out.glob("units/*.json"))  # nothing computed, nothing stored


def test_skip_unsupported_leaves_the_maps_out_with_a_warning(functional_folder, tmp_path):
    out = tmp_path / "run"
    proc = cli([*_args(functional_folder, out), "--skip-unsupported"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "leaving out 2 map(s)" in proc.stderr and "gb, gb-r" in proc.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and list(meta["maps"]) == ["vg"]
