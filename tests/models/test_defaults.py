"""Preprocessing defaults of model specs, from timm's and torchvision's own configurations."""

from __future__ import annotations

import pytest

from absgrad.models import model_defaults


def test_model_defaults():
    d = model_defaults("timm:vit_tiny_patch16_224").preprocess
    assert d.size == (224, 224) and d.mean == (0.5, 0.5, 0.5) and d.resize == int(224 / 0.9)
    assert d.interpolation == "bicubic"
    d = model_defaults("torchvision:resnet18").preprocess
    assert (d.size, d.resize, d.interpolation) == ((224, 224), 256, "bilinear")
    assert d.mean == pytest.approx((0.485, 0.456, 0.406))
    assert model_defaults("pkg.mod:make").preprocess.size == (224, 224)
