"""Test-time preprocessing defaults of a model spec, from the library that defines the model.

The one place that knows how timm and torchvision describe their models' preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from absgrad.models.preprocess import RESAMPLE, Preprocess
from absgrad.models.spec import ModelSpec, parse_model_spec

DEFAULT_SIZE = 224
DEFAULT_CROP_PCT = 0.875  # 224 / 256


@dataclass(frozen=True)
class ModelDefaults:
    """What the model's makers used at test time (``preprocess``) and where that comes from."""

    preprocess: Preprocess = Preprocess()
    source: str = "ImageNet defaults (224 px, resize 256, ImageNet mean/std)"


def _interpolation(name: str) -> str:
    """The library's interpolation name where Pillow has it, else bilinear."""
    return name if name in RESAMPLE else "bilinear"


def model_defaults(spec: str | ModelSpec) -> ModelDefaults:
    """Test-time preprocessing the library knows for the spec (no download, no model built).

    timm: the model's pretrained config (``input_size``, ``crop_pct``, ``mean``, ``std``,
    ``interpolation``); torchvision: its default weights' transforms; a factory: ImageNet
    defaults (224 px after resizing the shorter side to 256, ImageNet mean/std).
    """
    spec = parse_model_spec(spec)
    if spec.kind == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(spec.name)
        if cfg is not None:
            _, h, w = cfg.input_size
            crop_pct = cfg.crop_pct or DEFAULT_CROP_PCT
            prep = Preprocess(
                size=(h, w),
                resize=math.floor(min(h, w) / crop_pct),
                interpolation=_interpolation(cfg.interpolation or "bicubic"),
                mean=tuple(cfg.mean),
                std=tuple(cfg.std),
            )
            return ModelDefaults(prep, f"timm's pretrained config of {spec.name}")
    elif spec.kind == "torchvision":
        from torchvision.models import get_model_weights

        try:
            t = get_model_weights(spec.name).DEFAULT.transforms()
        except (ValueError, KeyError, AttributeError):
            t = None
        if t is not None and hasattr(t, "crop_size"):
            crop, resize = t.crop_size[0], t.resize_size[0]
            prep = Preprocess(
                size=(crop, crop),
                resize=resize,
                interpolation=_interpolation(str(t.interpolation.value)),
                mean=tuple(t.mean),
                std=tuple(t.std),
            )
            return ModelDefaults(prep, f"torchvision's default weights of {spec.name}")
    return ModelDefaults()


__all__ = ["DEFAULT_SIZE", "ModelDefaults", "model_defaults"]
