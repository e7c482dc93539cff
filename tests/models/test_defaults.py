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


def test_a_wrong_timm_tag_or_name_is_named_before_any_download():
    """The folder case reads the defaults before it fetches anything: a wrong tag or name is the
    same one-line spec error there as in ``fetch``, not timm's bare RuntimeError."""
    from absgrad.models import ModelSpecError

    with pytest.raises(ModelSpecError, match=r"Invalid pretrained tag \(nope\).*resnet18\.a1_in1k"):
        model_defaults("timm:resnet18.nope")
    with pytest.raises(ModelSpecError, match="timm has no model 'resnet_nope'"):
        model_defaults("timm:resnet_nope")
