"""Test-time preprocessing defaults of a model spec, from the library that defines the model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from absgrad.models.spec import ModelSpec, parse_model_spec
from absgrad.utils.normalization import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_SIZE = 224
DEFAULT_CROP_PCT = 0.875  # 224 / 256


@dataclass(frozen=True)
class ModelDefaults:
    """What the model's makers used at test time: input size, resize, normalisation."""

    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE)
    resize: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    source: str = "ImageNet defaults (224 px, resize 256, ImageNet mean/std)"


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
            return ModelDefaults(
                size=(h, w),
                resize=math.floor(min(h, w) / crop_pct),
                mean=tuple(cfg.mean),
                std=tuple(cfg.std),
                interpolation=cfg.interpolation or "bicubic",
                source=f"timm's pretrained config of {spec.name}",
            )
    elif spec.kind == "torchvision":
        from torchvision.models import get_model_weights

        try:
            t = get_model_weights(spec.name).DEFAULT.transforms()
        except (ValueError, KeyError, AttributeError):
            t = None
        if t is not None and hasattr(t, "crop_size"):
            crop, resize = t.crop_size[0], t.resize_size[0]
            return ModelDefaults(
                size=(crop, crop),
                resize=resize,
                mean=tuple(t.mean),
                std=tuple(t.std),
                interpolation=str(t.interpolation.value),
                source=f"torchvision's default weights of {spec.name}",
            )
    return ModelDefaults()


__all__ = ["DEFAULT_SIZE", "ModelDefaults", "model_defaults"]
