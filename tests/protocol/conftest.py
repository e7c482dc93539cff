"""Fixtures of the protocol tests: one shared end-to-end synthetic run per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.runs import E2E_ARGS, cli


@pytest.fixture(scope="session")
def selection_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("absgrad-cache")


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, selection_cache) -> Path:
    """``absgrad run --case synthetic --limit 4`` once per session; returns its output folder."""
    out = tmp_path_factory.mktemp("e2e") / "run"
    proc = cli([*E2E_ARGS, "--out", str(out)], selection_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
