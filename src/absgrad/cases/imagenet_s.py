"""The ``imagenet-s`` case (paper case 1): ImageNet-S validation, ResNet-50, ground-truth masks.

Layout of ``data`` (the ``ImageNetS919`` folder, or a folder holding it)::

    validation/<wnid>/<name>.JPEG              the photos, one folder per class (919 wnids)
    validation-segmentation/<wnid>/<name>.png  RGB masks: class id = R + 256 * G,
                                               0 = background, 1000 = ignore

The label of an image is the ImageNet-1k index of its folder's wnid (position in the sorted list
of the 1000 ImageNet wnids). The mask is binary: every annotated object pixel (id not 0 and not
1000) is foreground. Images and masks are resized to 256 x 256 (masks nearest-neighbour).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from absgrad.cases.base import (
    Case,
    CaseDataset,
    Record,
    Sample,
    UnreadableImageError,
    read_raw,
    read_rgb,
)
from absgrad.errors import AbsgradError, MissingFileError
from absgrad.models.builtin import RESNET50_FILE, resnet50_imagenet, torch_hub_checkpoint
from absgrad.models.preprocess import Preprocess
from absgrad.utils.files import require_dir

IGNORE_ID = 1000
IMAGE_EXTS = (".jpeg", ".jpg", ".png")
SOURCE = "ImageNet-S (https://github.com/LUSSeg/ImageNet-S), built from the ImageNet validation set"


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in sorted order (index = class index), from timm's metadata."""
    from timm.data import ImageNetInfo

    wnids = tuple(ImageNetInfo("imagenet-1k").label_names())
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise RuntimeError("timm's ImageNet-1k synset list is not the 1000 sorted wnids")
    return wnids


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """Readable names of the 1000 ImageNet-1k classes by index (``tench``, ``goldfish``...)."""
    from absgrad.models.pretrained import imagenet_class_names

    return tuple(imagenet_class_names("imagenet-1k"))


def wnid_to_index(wnid: str) -> int:
    """ImageNet-1k class index of a wnid such as ``n01443537``; unknown wnids are an error."""
    table = {w: i for i, w in enumerate(imagenet_wnids())}
    if wnid not in table:
        raise AbsgradError(
            f"{wnid!r} is not one of the 1000 ImageNet-1k wnids (folder names must be wnids)"
        )
    return table[wnid]


def decode_mask(im: Image.Image) -> np.ndarray:
    """ImageNet-S mask image -> class ids ``(H, W)`` int: ``R + 256 * G`` (or the grey value)."""
    if im.mode in ("RGB", "RGBA"):
        a = np.asarray(im.convert("RGB"), dtype=np.int64)
        return a[:, :, 0] + 256 * a[:, :, 1]
    if im.mode in ("L", "I", "I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.int64)
    raise UnreadableImageError(
        f"mask mode {im.mode!r} unsupported: expected an RGB PNG with class id = R + 256 * G"
    )


def foreground(ids: np.ndarray) -> np.ndarray:
    """Binary foreground of a class-id map: annotated pixels, neither background (0) nor ignore."""
    return (ids != 0) & (ids != IGNORE_ID)


class ImageNetSCase(Case):
    """ImageNet-S validation (919 classes) + torchvision ResNet-50 IMAGENET1K_V1, 256 x 256."""

    name = "imagenet-s"
    num_classes = 1000
    preprocess = Preprocess(size=(256, 256), resize="stretch")  # ImageNet mean/std
    gradcam_layer = "layer4"
    has_masks = True

    def __init__(
        self, *, data: str | Path | None = None, weights: str | Path | None = None
    ) -> None:
        super().__init__(data=data, weights=weights)
        expected = "validation/<wnid>/*.JPEG and validation-segmentation/<wnid>/*.png"
        root = require_dir(self.data, "ImageNet-S folder", expected, SOURCE)
        if not (root / "validation").is_dir() and (root / "ImageNetS919" / "validation").is_dir():
            root = root / "ImageNetS919"
        self.image_dir = require_dir(
            root / "validation", "ImageNet-S images folder", expected, SOURCE
        )
        self.mask_dir = require_dir(
            root / "validation-segmentation", "ImageNet-S segmentation folder", expected, SOURCE
        )
        self.root = root
        folders = sorted(p.name for p in self.image_dir.iterdir() if p.is_dir())
        if not folders:
            raise MissingFileError(f"{self.image_dir} has no class folders: expected {expected}")
        #: wnid -> ImageNet-1k index for the classes present (919 in the full dataset)
        self.class_index = {w: wnid_to_index(w) for w in folders}

    def weights_id(self) -> str:
        path = self.weights if self.weights is not None else torch_hub_checkpoint(RESNET50_FILE)
        return str(path.resolve())

    def class_names(self) -> list[str] | None:
        return list(imagenet_names())

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return resnet50_imagenet(self.weights, device)

    def _build_dataset(self) -> CaseDataset:
        records = []
        for wnid, label in self.class_index.items():
            for p in sorted((self.image_dir / wnid).iterdir()):
                if p.suffix.lower() in IMAGE_EXTS:
                    mask = self.mask_dir / wnid / (p.stem + ".png")
                    records.append(Record(p.stem, p, label, mask))

        def load(r: Record) -> Sample:
            im = read_rgb(r.path)
            assert r.mask_path is not None
            ids = decode_mask(read_raw(r.mask_path))
            if ids.shape != (im.height, im.width):
                raise UnreadableImageError(
                    f"mask {r.mask_path} is {ids.shape[1]}x{ids.shape[0]} but its image is "
                    f"{im.width}x{im.height}"
                )
            mask = self.preprocess.mask(foreground(ids))
            return Sample(r.id, self.preprocess.pixels(im), r.label, mask)

        return CaseDataset(records, load)
