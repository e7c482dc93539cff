"""Helpers of the protocol and report tests: the CLI as a subprocess, copies and stored scores
of a run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The end-to-end run every slow protocol test compares against (the issue's command).
E2E_ARGS = ["run", "--case", "synthetic", "--limit", "4", "--quiet"]


def cli_env() -> dict[str, str]:
    """Environment of a CLI subprocess: this process's, whose cache folders the fixtures of
    tests/conftest.py made private (``ABSGRAD_CACHE`` is the test's own), no debug tracebacks."""
    env = dict(os.environ)
    env.pop("ABSGRAD_DEBUG", None)
    return env


def cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    """Run ``absgrad ARGS`` in a fresh interpreter; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "absgrad.cli", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def unit_scores(out: Path) -> dict[str, dict]:
    """``{unit id: scores}`` of a run directory (timings left out)."""
    return {
        p.stem: json.loads(p.read_text())["scores"] for p in sorted((out / "units").glob("*.json"))
    }


def copy_run(run: Path, into: Path) -> Path:
    """A copy of the run folder ``run`` at ``into / run.name``, for a test that writes into it
    (a run shared by other tests stays as they expect it)."""
    return Path(shutil.copytree(run, into / run.name))
