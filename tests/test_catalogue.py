"""``absgrad list`` and ``--help`` answer without torch: the light catalogue matches the
registries, and the commands import no heavy module (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from absgrad import catalogue

SRC = Path(__file__).resolve().parents[1] / "src"
FIX = "absgrad/catalogue.py (what `absgrad list` prints) must list the registry's entries"
HEAVY = ("torch", "torchvision", "timm", "matplotlib", "numpy", "PIL", "skimage")


def test_catalogue_lists_exactly_the_registered_methods():
    from absgrad.methods import METHODS

    expected = {name: m.title for name, m in METHODS.items()}
    assert list(catalogue.METHODS.items()) == list(expected.items()), FIX


def test_catalogue_lists_exactly_the_metric_definitions():
    from absgrad.protocol.scoring import METRICS

    expected = {k: (m.title, m.higher_is_better, m.needs_mask) for k, m in METRICS.items()}
    assert list(catalogue.METRICS.items()) == list(expected.items()), FIX


def test_catalogue_lists_exactly_the_built_in_cases():
    from absgrad.cases import CASES

    assert catalogue.CASES == tuple(CASES), FIX


def test_protocol_exports_resolve_lazily():
    import absgrad.protocol as protocol

    assert sorted(protocol.__all__) == sorted(protocol._EXPORTS)
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None


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
