"""Test-time preprocessing defaults of a model spec, from the library that defines the model.

The one place that knows how timm, torchvision and Hugging Face image processors describe their
models' preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from absgrad.models.preprocess import RESAMPLE, STRETCH, Preprocess
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


#: Pillow's resampling numbers (Hugging Face processors store them) -> our names
PIL_RESAMPLE = {int(f): name for name, f in RESAMPLE.items()}
#: Hugging Face ConvNeXt-style processors warp without a crop from this shortest edge on.
HF_WARP_FROM = 384


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` or ``obj.key`` (processor sizes are dicts or ``SizeDict``), else None."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def hf_preprocess(processor: Any) -> Preprocess:
    """The :class:`Preprocess` of a Hugging Face image processor (its attributes ``size``,
    ``crop_size``, ``do_center_crop``, ``crop_pct``, ``resample``, ``image_mean``/``image_std``,
    ``do_normalize``, ``rescale_factor``).

    ``size`` ``{height, width}``: resized straight to it (``"stretch"``), then center-cropped to
    ``crop_size`` when ``do_center_crop``; ``{shortest_edge}``: the shorter side resized to it
    (``crop_pct``: to ``shortest_edge / crop_pct``, below 384 px) and center-cropped to a square
    (``crop_size``, else ``shortest_edge``), or warped to a square from 384 px on (ConvNeXt).
    """
    size, crop = getattr(processor, "size", None), getattr(processor, "crop_size", None)
    h, w, short = _get(size, "height"), _get(size, "width"), _get(size, "shortest_edge")
    cropping = bool(getattr(processor, "do_center_crop", False))
    crop_hw = (_get(crop, "height"), _get(crop, "width"))
    crop_pct = getattr(processor, "crop_pct", None)
    if h and w:
        resize: int | str | tuple[int, int] = STRETCH
        out = (int(h), int(w))
        if cropping and all(crop_hw):
            resize, out = (int(h), int(w)), (int(crop_hw[0]), int(crop_hw[1]))
    elif short:
        short = int(short)
        if crop_pct and short < HF_WARP_FROM:
            resize, out = int(short / crop_pct), (short, short)
        elif crop_pct:
            resize, out = STRETCH, (short, short)
        elif cropping and all(crop_hw):
            resize, out = short, (int(crop_hw[0]), int(crop_hw[1]))
        else:
            resize, out = short, (short, short)
    else:
        return Preprocess()
    mean, std = (0.0,) * 3, (1.0,) * 3
    if getattr(processor, "do_normalize", True):
        mean = tuple(float(v) for v in processor.image_mean)
        std = tuple(float(v) for v in processor.image_std)
    # pixels p in [0, 1] are p * 255 for the processor: (255 p * r - mean) / std
    scale = 255.0 * float(getattr(processor, "rescale_factor", 1 / 255))
    if not getattr(processor, "do_rescale", True):
        scale = 255.0
    resample = getattr(processor, "resample", 2)
    return Preprocess(
        size=out,
        resize=resize,
        interpolation=PIL_RESAMPLE.get(int(getattr(resample, "value", resample)), "bilinear"),
        mean=tuple(m / scale for m in mean),
        std=tuple(s / scale for s in std),
    )


def _hf_defaults(spec: ModelSpec) -> ModelDefaults:
    from absgrad.models.pretrained import HF_PROCESSOR, fetch

    got = fetch(spec, weights=False)
    if HF_PROCESSOR not in got.files:
        return ModelDefaults(source=f"ImageNet defaults ({spec} has no {HF_PROCESSOR})")
    from transformers import AutoImageProcessor

    folder: Path = got.files[HF_PROCESSOR].parent
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return ModelDefaults(hf_preprocess(processor), f"the image processor of {spec}")


def model_defaults(spec: str | ModelSpec) -> ModelDefaults:
    """Test-time preprocessing the library knows for the spec (no model built).

    timm: the model's pretrained config (``input_size``, ``crop_pct``, ``mean``, ``std``,
    ``interpolation``); torchvision: its default weights' transforms; ``hf:``: the model's
    image processor (:func:`hf_preprocess`; its files are fetched, see
    :mod:`absgrad.models.pretrained`); a factory: ImageNet defaults (224 px after resizing the
    shorter side to 256, ImageNet mean/std).
    """
    spec = parse_model_spec(spec)
    if spec.kind == "hf":
        return _hf_defaults(spec)
    if spec.kind == "timm":
        from absgrad.models.pretrained import timm_pretrained_cfg

        cfg = timm_pretrained_cfg(spec)  # an unknown name or tag: a ModelSpecError naming it
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


__all__ = ["DEFAULT_SIZE", "ModelDefaults", "hf_preprocess", "model_defaults"]
