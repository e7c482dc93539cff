"""Resume: a run stopped by SIGINT and then SIGKILL finishes with the uninterrupted run's results
and recomputes none of the units it had stored."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.runs import E2E_ARGS, cli, start_cli, unit_scores

pytestmark = pytest.mark.slow


def _start(out: Path) -> subprocess.Popen:
    return start_cli([*E2E_ARGS, "--no-report", "--out", str(out)])


def _stop_after(proc: subprocess.Popen, out: Path, n_units: int, sig: int) -> int:
    """Send ``sig`` once at least ``n_units`` unit files exist; return the exit status."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run finished before it could be stopped: {proc.stderr.read()[-2000:]}")
        if len(list((out / "units").glob("*.json"))) >= n_units:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run stored no units within 300 s")
    proc.communicate(timeout=120)
    return proc.returncode


def _stored(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}


def test_interrupted_and_killed_run_resumes_to_identical_results(tmp_path, synthetic_run):
    out = tmp_path / "run"
    # 1. Ctrl-C after 2 units: exit 130, run.json says interrupted
    code = _stop_after(_start(out), out, 2, signal.SIGINT)
    assert code == 130
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and 2 <= meta["done_units"] < 10
    # a partial run can be reported already
    proc = cli(["report", str(out)])
    assert proc.returncode == 0 and "partial" in proc.stderr
    assert "Partial run" in (out / "report.html").read_text()
    # 2. resume, then SIGKILL (no clean-up at all) after 2 more units
    first = _stored(out)
    code = _stop_after(_start(out), out, len(first) + 2, signal.SIGKILL)
    assert code == -signal.SIGKILL
    for p in (out / "units").glob("*.json"):  # every stored file is whole
        json.loads(p.read_text())
    done_before = _stored(out)
    assert len(done_before) < 10
    # 3. resume to the end
    proc = cli([*E2E_ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _stored(out)
    assert len(after) == 10
    # finished units were not recomputed: same files, untouched
    assert {k: after[k] for k in done_before} == done_before
    log = (out / "absgrad.log").read_text()
    assert f"skipping {len(done_before)} stored unit(s)" in log
    assert log.count("computed unit") == 10  # each unit computed exactly once over 3 sessions
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and len(meta["sessions"]) == 3
    # results equal the uninterrupted run's, value for value
    assert unit_scores(out) == unit_scores(synthetic_run)
    assert (out / "tables" / "table1.csv").read_text() == (
        synthetic_run / "tables" / "table1.csv"
    ).read_text()
    assert not list(out.rglob("*.tmp"))
