"""No test reaches the network: a guard for this process and for the CLI subprocesses it starts.

``no_network`` (a fixture) blocks name lookups and connections to anything but the loopback in
this process and sets ``HF_HUB_OFFLINE=1``; :func:`offline_cli` runs ``absgrad`` in a subprocess whose ``sitecustomize`` installs
the same guard (``support/nonet``). A library that tries to download then fails as it would on
an unplugged machine, at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.runs import cli, cli_env

NONET = Path(__file__).resolve().parent / "nonet"


def offline_env(hub_offline: bool = True, **extra: str) -> dict[str, str]:
    """The CLI's test environment with the network guard first on ``PYTHONPATH`` and, with
    ``hub_offline``, ``HF_HUB_OFFLINE=1``; ``extra`` variables on top."""
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NONET), env.get("PYTHONPATH", "")) if p)
    if hub_offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env.pop("HF_HUB_OFFLINE", None)
    env.update(extra)
    return env


def offline_cli(
    args: list[str], *, hub_offline: bool = True, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess:
    """``absgrad ARGS`` in a fresh interpreter that cannot reach the network."""
    return cli(args, env=offline_env(hub_offline, **extra), cwd=cwd)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process cannot reach the network for the test's duration (see the module doc)."""
    sys.path.insert(0, str(NONET))
    try:
        import support_nonet_guard as guard
    finally:
        sys.path.remove(str(NONET))
    saved = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    guard.block_network()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants  # read at import: set the value itself too

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    try:
        yield
    finally:
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = saved
        socket._absgrad_blocked = False  # type: ignore[attr-defined]
