"""Helpers of the protocol and report tests: the CLI as a subprocess, copies and stored scores
of a run."""

from __future__ import annotations

import json
import os
import shutil
import signal
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


#: ``absgrad`` in a fresh interpreter
CLI = [sys.executable, "-m", "absgrad.cli"]


def cli(args: list[str], *, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``absgrad ARGS`` in a fresh interpreter (``env``: :func:`cli_env` unless given);
    returns the finished process."""
    return subprocess.run(
        [*CLI, *args],
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def _sigint_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(args: list[str]) -> subprocess.Popen:
    """Start ``absgrad ARGS`` in a fresh interpreter without waiting for it. SIGINT reaches it
    as Ctrl-C at a terminal would, even when the tests themselves were started in the
    background (``cmd &`` makes a non-interactive shell ignore SIGINT in its children, and
    Python then keeps ignoring it)."""
    return subprocess.Popen(
        [*CLI, *args],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_at_a_terminal,
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
