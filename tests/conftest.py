"""Shared fixtures: caches kept out of the user's home, tiny deterministic models, the location of
../shared data and the one synthetic run the slow protocol and report tests read."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from support.runs import E2E_ARGS, cli

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGENET_SAMPLE = SHARED / "data" / "imagenet-sample"

#: Where the libraries the tests load keep their caches (default: under ``~/.cache``).
TOOL_CACHES = {
    "XDG_CACHE_HOME": "xdg",  # onnxruntime's device id and database; the default of the below
    "MPLCONFIGDIR": "matplotlib",  # matplotlib's config folder and font list (first import)
    "TORCH_HOME": "torch",  # torch.hub and torchvision checkpoints
    "HF_HOME": "huggingface",  # timm's pretrained weights
}


_SESSION_ENV = pytest.StashKey[pytest.MonkeyPatch]()
_SESSION_CACHES = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """One folder per session for the tool caches, so no test writes into ``~/.cache`` (or
    ``~/.config``, ``~/.ray``).

    Set here, before collection: test modules import matplotlib and onnxruntime, which fix
    their folders when imported. Per session, not per test: the caches hold nothing a test
    reads back (no test downloads), and matplotlib rebuilds its font list (seconds) in every
    process that starts with an empty one, which every CLI subprocess making figures would do.
    ``ABSGRAD_CACHE`` set here serves only fixtures wider than a test (:func:`absgrad_cache`
    gives each test its own) and ``ABSGRAD_DEBUG`` is cleared, so a developer's setting cannot
    turn user errors into tracebacks. ``HF_HUB_OFFLINE=1``: nothing is fetched from the Hugging
    Face Hub, even by accident.
    """
    root = Path(tempfile.mkdtemp(prefix="absgrad-test-caches-"))
    env = pytest.MonkeyPatch()
    for var, folder in TOOL_CACHES.items():
        env.setenv(var, str(root / folder))
    # no test downloads: the Hub client answers from its cache or fails at once (the tests of
    # published weights also block sockets: support.offline)
    env.setenv("HF_HUB_OFFLINE", "1")
    env.setenv("ABSGRAD_CACHE", str(root / "absgrad"))
    env.setenv("TORCHINDUCTOR_CACHE_DIR", str(root / "absgrad" / "inductor"))
    # a local Ray cluster wants an auth token and writes one to ~/.ray unless it is given one
    env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    env.delenv("ABSGRAD_DEBUG", raising=False)
    config.stash[_SESSION_ENV], config.stash[_SESSION_CACHES] = env, root


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_ENV in config.stash:
        config.stash[_SESSION_ENV].undo()
        shutil.rmtree(config.stash[_SESSION_CACHES], ignore_errors=True)


@pytest.fixture(autouse=True)
def absgrad_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """absgrad's cache folder (selection probabilities, compiled kernels), private to each test.

    Set in the environment, so CLI subprocesses (``support.runs.cli``) inherit it. Per test: a
    selection cache shared across tests would let one test's entries answer another's (a
    cache-key bug would pass whenever the tests run in one order), and sharing saves little: a
    cold selection of the synthetic case took 0.6-0.8 s after the model's first call (2-core
    VM; 3-6 s with the machine 5x oversubscribed), and about a dozen runs of the suite select
    what an earlier test had selected (the benchmark scripts, the Ray module, compare, resume).
    ``TORCHINDUCTOR_CACHE_DIR`` is where absgrad's engine would put it (``inductor/`` in
    ``$ABSGRAD_CACHE``), so ``torch.compile`` outside the engine stays private too.
    """
    path = tmp_path_factory.mktemp("absgrad-cache")
    monkeypatch.setenv("ABSGRAD_CACHE", str(path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(path / "inductor"))
    return path


@pytest.fixture
def imagenet_sample_dir() -> Path:
    """The 500-photo ImageNet sample beside the checkout; skips when ../shared is absent."""
    if not (IMAGENET_SAMPLE / "labels.csv").is_file():
        pytest.skip(
            f"needs the shared ImageNet sample at {IMAGENET_SAMPLE} (absent in a fresh clone)"
        )
    return IMAGENET_SAMPLE


class TinyCNN(nn.Module):
    """A small ReLU CNN: conv-relu-conv-relu-pool-linear, 3 x H x W -> K logits."""

    def __init__(self, num_classes: int = 5, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def tiny_inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 16, 16, generator=g)


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``absgrad run --case synthetic --limit 4`` once per session; returns its output folder.

    Shared by many tests: read it, never write into it (copy it into ``tmp_path`` first, as
    :func:`support.runs.copy_run` does).
    """
    out = tmp_path_factory.mktemp("e2e") / "run"
    proc = cli([*E2E_ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
