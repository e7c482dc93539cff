"""Shared checks of the forward engines' tests (tests/inference/test_engine.py, test_ort.py)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn


def eager_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits in eval mode (its training flag restored)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train(was)
    return out


def assert_falls_back_once(engine, model: nn.Module, x: torch.Tensor, match: str) -> None:
    """The engine warns (``match``) and gives the eager logits, runs eagerly from then on, and
    does not warn again."""
    with pytest.warns(RuntimeWarning, match=match):
        out = engine(x)
    assert torch.allclose(out, eager_logits(model, x), atol=1e-6)
    assert not engine.compiled and engine.kind == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        engine(x)


def assert_metrics_agree(model: nn.Module, engine) -> None:
    """RCAP and the deletion/insertion curves are the same through ``engine`` as through the
    model (3 random images and maps of 3 x 8 x 8)."""
    from absgrad import metrics as M

    x = torch.randn(3, 3, 8, 8)
    maps = torch.rand(3, 8, 8)
    a = M.rcap(model, x, [0, 1, 2], maps, batch_size=8)
    b = M.rcap(engine, x, [0, 1, 2], maps, batch_size=8)
    assert torch.allclose(a.score, b.score, atol=1e-6)
    c = M.deletion_insertion(model, x, None, maps, steps=5, batch_size=8)
    d = M.deletion_insertion(engine, x, None, maps, steps=5, batch_size=8)
    assert torch.allclose(c.deletion, d.deletion, atol=1e-6)
    assert torch.allclose(c.insertion, d.insertion, atol=1e-6)
