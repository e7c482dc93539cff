"""Helpers of the protocol tests: the CLI as a subprocess, stored scores of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: The end-to-end run every slow protocol test compares against (the issue's command).
E2E_ARGS = ["run", "--case", "synthetic", "--limit", "4", "--quiet"]


def cli_env(cache: Path) -> dict[str, str]:
    """Environment of a CLI subprocess: a private selection cache, no debug tracebacks."""
    env = dict(os.environ)
    env["ABSGRAD_CACHE"] = str(cache)
    env.pop("ABSGRAD_DEBUG", None)
    return env


def cli(args: list[str], cache: Path, **kw) -> subprocess.CompletedProcess:
    """Run ``absgrad ARGS`` in a fresh interpreter; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "absgrad.cli", *args],
        env=cli_env(cache),
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
