"""Shared fixtures: tiny deterministic models and the location of ../shared data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGENET_SAMPLE = SHARED / "data" / "imagenet-sample"


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
