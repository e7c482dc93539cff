"""Preprocessing: the crop and stretch geometries against torchvision, masks with their photo's
geometry, normalisation, the user's options, and cases reading their settings from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from absgrad.cases import CASES
from absgrad.models.preprocess import (
    Preprocess,
    PreprocessError,
    parse_norm,
    parse_size,
)


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("photo", "resized", "box"),
    [
        # 400 x 300, shorter side to 256: 341.33 -> 341 wide; (341 - 224) / 2 = 58.5 -> 58
        ((400, 300), (341, 256), (58, 16, 282, 240)),
        ((300, 400), (256, 341), (16, 58, 240, 282)),  # portrait
        ((256, 256), (256, 256), (16, 16, 240, 240)),
        ((100, 1000), (256, 2560), (16, 1168, 240, 1392)),
    ],
)
def test_crop_geometry_matches_torchvision_resize_then_center_crop(photo, resized, box):
    prep = Preprocess(size=(224, 224), resize=256)
    assert prep.geometry(*photo) == (resized, box)
    im = _photo(*photo)
    ref = TF.center_crop(TF.resize(im, [resized[1], resized[0]]), [224, 224])
    expect = TF.to_tensor(ref)
    torch.testing.assert_close(prep.pixels(im), expect, rtol=0, atol=0)


def test_non_square_crop_and_stretch():
    im = _photo(90, 60)
    prep = Preprocess(size=(32, 48), resize=40)  # (H, W): 40 / 60 -> 60 x 40, then 48 x 32
    assert prep.geometry(90, 60) == ((60, 40), (6, 4, 54, 36))
    assert prep.pixels(im).shape == (3, 32, 48)
    small = Preprocess(size=(32, 48), resize=20)  # 20 px would not cover 48 x 32: grows to it
    assert small.geometry(90, 60) == ((48, 32), (0, 0, 48, 32))
    stretch = Preprocess(size=(32, 48), resize="stretch")
    assert not stretch.crops and stretch.geometry(90, 60) == ((48, 32), (0, 0, 48, 32))
    expect = TF.to_tensor(im.resize((48, 32), Image.BILINEAR))
    torch.testing.assert_close(stretch.pixels(im), expect, rtol=0, atol=0)


@pytest.mark.parametrize("resize", [40, "stretch"])
def test_masks_follow_their_photo_pixel_for_pixel(resize):
    rng = np.random.default_rng(1)
    fg = rng.random((61, 87)) < 0.3
    photo = Image.fromarray(np.repeat(fg[:, :, None], 3, axis=2).astype(np.uint8) * 255)
    prep = Preprocess(size=(32, 36), resize=resize, interpolation="nearest")
    assert torch.equal(prep.mask(fg), prep.pixels(photo)[0] > 0.5)


def test_normalize_and_back():
    prep = Preprocess(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    x = torch.rand(2, 3, 4, 5)
    mean = torch.tensor(prep.mean)[:, None, None]
    std = torch.tensor(prep.std)[:, None, None]
    torch.testing.assert_close(prep.normalize(x), (x - mean) / std)
    torch.testing.assert_close(prep.normalize(x[0]), (x[0] - mean) / std)
    torch.testing.assert_close(prep.denormalize(prep.normalize(x)), x)


def test_user_options():
    base = Preprocess(size=(224, 224), resize=256, interpolation="bicubic")
    assert base.with_options(size=112).resize == 128  # the crop ratio is kept
    assert base.with_options(size="112x96", resize=100).size == (112, 96)
    assert base.with_options(resize="stretch").resize == "stretch"
    assert base.with_options(norm="0.5").normalization == ((0.5,) * 3, (0.5,) * 3)
    assert base.with_options().interpolation == "bicubic"
    assert parse_size("224") == (224, 224) and parse_size("224x192") == (224, 192)
    assert parse_size([64, 48]) == (64, 48)
    assert parse_norm("0.1,0.2") == ((0.1,) * 3, (0.2,) * 3)
    assert parse_norm([1, 2, 3, 4, 5, 6]) == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    for bad in ("1,2,3", "0.5,0", "imagenet21k"):
        with pytest.raises(PreprocessError, match="norm must be"):
            parse_norm(bad)
    with pytest.raises(PreprocessError, match="size must be"):
        parse_size("big")
    with pytest.raises(PreprocessError, match="resize must be"):
        base.with_options(resize="squash")
    with pytest.raises(PreprocessError, match="resize must be an int"):
        Preprocess(resize="256")
    with pytest.raises(PreprocessError, match="interpolation must be"):
        Preprocess(interpolation="box")


def test_every_case_declares_its_preprocessing():
    for name, cls in CASES.items():
        if name == "folder":  # built per instance from the model's defaults
            continue
        prep = cls.preprocess
        assert isinstance(prep, Preprocess), name
        assert cls.image_size == prep.size and cls.normalization == (prep.mean, prep.std)
    crop = {n for n, c in CASES.items() if n != "folder" and c.preprocess.crops}
    assert crop == {"imagenet-sample", "places365", "synthetic"}
    with pytest.raises(AttributeError, match="set preprocess instead"):
        CASES["demo"]().image_size = (32, 32)
