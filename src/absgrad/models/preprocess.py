"""Preprocessing: a decoded photo -> the model-size pixels every path (run, explain) feeds the model.

A :class:`Preprocess` says how a photo becomes an input: ``size`` ``(H, W)``; ``resize``, the
shorter side before a centre crop of ``size`` (``"crop"`` geometry: the photo keeps its aspect,
and grows if needed to cover ``size``), ``"stretch"`` (resized straight to ``size``) or
``(H', W')`` (resized straight to ``H' x W'``, then centre-cropped to ``size``, as Hugging
Face's DeiT processor does); the ``interpolation``; and ``mean``/``std`` of
``(pixel - mean) / std``. Every case declares one, the
folder case builds it from the model's defaults and the user's ``size``/``resize``/``norm``, and
``Case.load_image`` (what ``explain`` uses) applies the same one as ``Case.samples()``.

Pixels are ``(3, H, W)`` float32 in [0, 1]; masks ``(H, W)`` bool with the same geometry
(nearest neighbour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from absgrad.errors import AbsgradError
from absgrad.utils.normalization import IMAGENET_MEAN, IMAGENET_STD

STRETCH = "stretch"
#: interpolation name -> Pillow resampling filter
RESAMPLE = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


#: The largest input side (``size``) absgrad accepts: a 4096 x 4096 input is 200 MB as float32;
#: the sizes of image classifiers lie far below it (224 to 1024), while a typo such as 100000
#: would ask for 120 GB per image before anything else happens.
MAX_SIDE = 4096
#: The largest ``resize`` (the shorter side before the crop): twice ``MAX_SIDE``.
MAX_RESIZE = 2 * MAX_SIDE


class PreprocessError(AbsgradError):
    """A preprocessing option (size, resize, norm, interpolation) is invalid; the message says how."""


@dataclass(frozen=True)
class Preprocess:
    """How a photo becomes model pixels: ``size`` ``(H, W)``, ``resize`` (shorter side before the
    centre crop, ``"stretch"``, or ``(H', W')`` stretched to before the crop), ``interpolation``
    (a key of ``RESAMPLE``) and ``mean``/``std``.

    The defaults are the ImageNet convention: resize 256, crop 224, bilinear, ImageNet mean/std.
    """

    size: tuple[int, int] = (224, 224)
    resize: int | str | tuple[int, int] = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        h, w = self.size
        if min(h, w) < 1:
            raise PreprocessError(f"size must be positive (H, W), got {self.size}")
        if max(h, w) > MAX_SIDE:
            raise PreprocessError(_too_large("size", self.size, self.size, MAX_SIDE))
        if isinstance(self.resize, (tuple, list)):
            if (
                len(self.resize) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in self.resize)
                or self.resize[0] < h
                or self.resize[1] < w
            ):
                raise PreprocessError(
                    f"resize (H, W) must be two ints at least the size {self.size}, "
                    f"got {self.resize!r}"
                )
            sides = (int(self.resize[0]), int(self.resize[1]))
            object.__setattr__(self, "resize", sides)
            if max(sides) > MAX_RESIZE:
                raise PreprocessError(_too_large("resize", sides, sides, MAX_RESIZE))
        elif self.resize != STRETCH and (
            not isinstance(self.resize, int) or isinstance(self.resize, bool) or self.resize < 1
        ):
            raise PreprocessError(
                f"resize must be an int >= 1, 'stretch' or (H, W), got {self.resize!r}"
            )
        elif self.resize != STRETCH and self.resize > MAX_RESIZE:
            raise PreprocessError(
                _too_large("resize", self.resize, (self.resize, self.resize), MAX_RESIZE)
            )
        if self.interpolation not in RESAMPLE:
            raise PreprocessError(
                f"interpolation must be one of {', '.join(RESAMPLE)}, got {self.interpolation!r}"
            )
        if len(self.mean) not in (1, 3) or len(self.std) not in (1, 3) or min(self.std) <= 0:
            raise PreprocessError(
                f"mean and std need 1 or 3 values each, std > 0; got {self.mean}, {self.std}"
            )

    @property
    def crops(self) -> bool:
        """True for the crop geometry (resize the shorter side, centre crop), False for stretch."""
        return self.resize != STRETCH

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)``."""
        return self.mean, self.std

    # -- geometry ---------------------------------------------------------------------------------
    def geometry(
        self, width: int, height: int
    ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """For a ``width`` x ``height`` photo: the resized ``(w, h)`` and the crop box
        ``(left, top, right, bottom)`` in the resized photo."""
        h, w = self.size
        if not self.crops:
            return (w, h), (0, 0, w, h)
        if isinstance(self.resize, tuple):
            rh, rw = self.resize
            left, top = int(round((rw - w) / 2.0)), int(round((rh - h) / 2.0))
            return (rw, rh), (left, top, left + w, top + h)
        s = max(self.resize / min(width, height), h / height, w / width)
        nw, nh = max(w, round(width * s)), max(h, round(height * s))
        left, top = int(round((nw - w) / 2.0)), int(round((nh - h) / 2.0))
        return (nw, nh), (left, top, left + w, top + h)

    def resize_image(self, im: Image.Image, interpolation: str | None = None) -> Image.Image:
        """A Pillow image resized and cropped to ``size`` (``interpolation``: else the own)."""
        resized, box = self.geometry(*im.size)
        im = im.resize(resized, RESAMPLE[interpolation or self.interpolation])
        return im.crop(box) if self.crops else im

    def pixels(self, im: Image.Image) -> Tensor:
        """A decoded RGB photo -> ``(3, H, W)`` float32 pixels in [0, 1] at ``size``."""
        return pil_to_tensor(self.resize_image(im))

    def mask(self, foreground: np.ndarray) -> Tensor:
        """A photo-size ``(h, w)`` bool foreground -> ``(H, W)`` bool, the photo's geometry
        (nearest neighbour)."""
        im = Image.fromarray(np.asarray(foreground, dtype=bool).astype(np.uint8) * 255)
        return torch.from_numpy(np.asarray(self.resize_image(im, "nearest")) > 127)

    # -- normalisation ----------------------------------------------------------------------------
    def normalize(self, pixels: Tensor) -> Tensor:
        """``(B, 3, H, W)`` (or ``(3, H, W)``) pixels in [0, 1] -> model inputs."""
        return normalize(pixels, self.mean, self.std)

    def denormalize(self, x: Tensor) -> Tensor:
        """Model inputs -> pixels in [0, 1] (the inverse of ``normalize``)."""
        return denormalize(x, self.mean, self.std)

    # -- user options -------------------------------------------------------------------------------
    def with_options(self, size: Any = None, resize: Any = None, norm: Any = None) -> Preprocess:
        """These settings with the user's ``size`` (``N``, ``HxW``), ``resize`` (``N``,
        ``stretch`` or ``HxW``) and ``norm`` (see :func:`parse_norm`) where given. ``size``
        without ``resize`` keeps the crop ratio (``resize / min(size)``, per side for
        ``(H', W')``)."""
        out = self
        if size is not None:
            new = parse_size(size)
            keep = self.resize
            if resize is None and isinstance(self.resize, tuple):
                keep = tuple(
                    max(n, round(n * r / o))
                    for n, r, o in zip(new, self.resize, self.size, strict=True)
                )
            elif resize is None and self.crops:
                keep = round(min(new) * self.resize / min(self.size))
            out = replace(out, size=new, resize=keep)
        if resize is not None:
            out = replace(out, resize=parse_resize(resize))
        if norm is not None:
            mean, std = parse_norm(norm)
            out = replace(out, mean=mean, std=std)
        return out


def _too_large(name: str, value: Any, sides: tuple[int, int], limit: int) -> str:
    gb = 3 * sides[0] * sides[1] * 4 / 1e9
    cost = f" (one {sides[0]}x{sides[1]} image would take {gb:.3g} GB)" if gb >= 1 else ""
    return f"{name} {value!r} is larger than {limit} pixels a side, the most absgrad accepts{cost}"


def pil_to_tensor(im: Image.Image) -> Tensor:
    """RGB Pillow image -> ``(3, H, W)`` float32 in [0, 1]."""
    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _stats(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
    shape = (1, len(mean), 1, 1) if x.dim() == 4 else (len(mean), 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).reshape(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).reshape(shape)
    return m, s


def normalize(pixels: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(pixels - mean) / std`` per channel, for ``(B, C, H, W)`` or ``(C, H, W)``."""
    m, s = _stats(pixels, mean, std)
    return (pixels - m) / s


def denormalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``x * std + mean`` per channel: the inverse of :func:`normalize`."""
    m, s = _stats(x, mean, std)
    return x * s + m


# -- option parsing -------------------------------------------------------------------------------
def parse_size(value: Any) -> tuple[int, int]:
    """``224``, ``"224"``, ``"224x192"``, ``[224, 192]`` -> ``(H, W)``."""
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        hw = [int(p) for p in parts]
    except (TypeError, ValueError):
        hw = []
    if len(hw) == 1:
        hw = hw * 2
    if len(hw) != 2 or min(hw) < 8:
        raise PreprocessError(f"size must be N or HxW with sides >= 8 pixels, got {value!r}")
    if max(hw) > MAX_SIDE:
        raise PreprocessError(_too_large("size", value, (hw[0], hw[1]), MAX_SIDE))
    return hw[0], hw[1]


def parse_resize(value: Any) -> int | str | tuple[int, int]:
    """An integer (the shorter side before the center crop), ``"stretch"``, or ``HxW`` /
    ``[H, W]`` (stretched to before the center crop)."""
    if isinstance(value, str) and value.strip().lower() == STRETCH:
        return STRETCH
    if isinstance(value, (list, tuple)) or (isinstance(value, str) and "x" in value.lower()):
        return parse_size(value)
    try:
        r = int(value)
    except (TypeError, ValueError):
        r = 0
    if r < 8 or isinstance(value, bool):
        raise PreprocessError(
            f"resize must be the shorter side in pixels (>= 8), 'stretch' or HxW, got {value!r}"
        )
    if r > MAX_RESIZE:
        raise PreprocessError(_too_large("resize", value, (r, r), MAX_RESIZE))
    return r


def parse_norm(value: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``imagenet`` | ``0.5`` | ``none`` | ``MEAN,STD`` (2 or 6 numbers) -> (mean, std)."""
    if isinstance(value, str) and value.strip().lower() in ("imagenet", "0.5", "none"):
        key = value.strip().lower()
        if key == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        return ((0.5,) * 3, (0.5,) * 3) if key == "0.5" else ((0.0,) * 3, (1.0,) * 3)
    items = value.split(",") if isinstance(value, str) else value
    try:
        nums = [float(v) for v in items]
    except (TypeError, ValueError):
        nums = []
    if len(nums) == 2:
        nums = [nums[0]] * 3 + [nums[1]] * 3
    if len(nums) != 6 or min(nums[3:]) <= 0:
        raise PreprocessError(
            "norm must be imagenet, 0.5, none or MEAN,STD (2 numbers, or 3 means then 3 "
            f"positive stds), got {value!r}"
        )
    return tuple(nums[:3]), tuple(nums[3:])


def norm_text(norm: tuple[Sequence[float], Sequence[float]]) -> str:
    """``(mean, std)`` -> ``"m1,m2,m3,s1,s2,s3"`` (as ``parse_norm`` reads it)."""
    return ",".join(f"{v:g}" for v in (*norm[0], *norm[1]))


__all__ = [
    "MAX_RESIZE",
    "MAX_SIDE",
    "RESAMPLE",
    "STRETCH",
    "Preprocess",
    "PreprocessError",
    "denormalize",
    "norm_text",
    "normalize",
    "parse_norm",
    "parse_resize",
    "parse_size",
    "pil_to_tensor",
]
