"""An eager run imports no compile stack: ``torch._dynamo`` (and with it sympy, FSDP and the
inductor) costs seconds of start-up and is needed only by ``engine: compile``."""

from __future__ import annotations

import json
import subprocess
import sys

from support.runs import cli_env

HEAVY = ("torch._dynamo", "torch._inductor", "torch.distributed.fsdp", "sympy", "timm")

PROBE = """
import json, sys
from absgrad.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.startswith({heavy!r}))
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def test_an_eager_synthetic_run_imports_no_compile_stack(tmp_path):
    args = ["run", "--case", "synthetic", "--limit", "1", "--tables", "1",
            "--methods", "vg,sg", "--n-samples", "2", "--metrics", "rcap,dauc", "--engine",
            "eager", "--quiet", "--no-report", "--out", str(tmp_path / "run")]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        env=cli_env(),  # the test's private ABSGRAD_CACHE
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 0
    assert out["heavy"] == []
    # the run still records timm's version (read from its metadata, not by importing it)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "timm" in meta["sessions"][0]["versions"]
