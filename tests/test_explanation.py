"""``absgrad.explain_file``: the map of one image file equals ``absgrad.explain`` on the same
pixels, bad input is one clear error, and ``save_explanation`` writes the overlay and the .npy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import absgrad
from absgrad.cases import get_case
from absgrad.errors import AbsgradError, ArgumentError, MissingFileError


@pytest.fixture(scope="module")
def shape_png(tmp_path_factory):
    """A 32 x 32 synthetic-case image: the case's size, so its pixels are the file's."""
    from absgrad.cases.synthetic import make_image

    img, _, _ = make_image(0, "test", 3)
    path = tmp_path_factory.mktemp("img") / "shape.png"
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return path


def test_map_equals_explain_on_the_same_pixels(shape_png):
    e = absgrad.explain_file(shape_png, model="synthetic", params={"n_samples": 4}, seed=3)
    # the same computation from the file's bytes, written out here
    pixels = torch.from_numpy(np.asarray(Image.open(shape_png).convert("RGB")).copy())
    pixels = pixels.permute(2, 0, 1).float() / 255
    case = get_case("synthetic")
    model = case.build_model()
    x = case.normalize(pixels[None])
    probs = model(x).softmax(dim=1)[0].detach()
    target = int(probs.argmax())
    gen = torch.Generator().manual_seed(3)
    expect = absgrad.explain(model, x, target, "gag", generator=gen, n_samples=4)[0]
    assert torch.equal(e.pixels, pixels)
    assert e.map.shape == (32, 32)
    torch.testing.assert_close(e.map, expect, atol=1e-6, rtol=0)
    assert e.target == target and e.probability == pytest.approx(float(probs[target]), abs=1e-6)
    assert e.case.name == "synthetic" and e.method == "gag"
    # another target is another map
    other = absgrad.explain_file(shape_png, model="synthetic", target=(target + 1) % 4, seed=3)
    assert other.target == (target + 1) % 4 and not torch.equal(other.map, e.map)


def test_model_spec_with_classes_names_the_class(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", num_classes=3).state_dict(), tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("ant\nbee\ncow\n")
    src = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(
        src
    )
    e = absgrad.explain_file(
        src,
        model="timm:test_resnet",
        weights=tmp_path / "w.pth",
        method="gradcam",
        target=2,
        classes=str(tmp_path / "classes.txt"),
        size=64,
        resize="stretch",
        norm="0.5",
    )
    assert (e.target, e.class_name, e.label) == (2, "cow", "2 cow")
    assert e.map.shape == (64, 64) and e.pixels.shape == (3, 64, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "nosuch"}, "unknown method 'nosuch'"),
        ({"params": {"nosuch": 1}}, "unknown parameter(s) nosuch for method 'gag'"),
        ({"target": 4}, "target 4 is out of range for a model with 4 classes"),
        ({"target": -1}, "target -1 is out of range for a model with 4 classes"),
        ({"target": 1.5}, "target must be a class index, got 1.5"),
        ({"layer": "block2"}, "layer applies to method gradcam, not to 'gag'"),
        ({"size": 64, "norm": "0.5"}, "size, norm apply to a model spec, not to case 'synthetic'"),
        ({"model": "resnet18"}, "unknown model 'resnet18': give a model spec"),
    ],
)
def test_bad_arguments_are_named(shape_png, kwargs, message):
    with pytest.raises(AbsgradError) as info:
        absgrad.explain_file(shape_png, **{"model": "synthetic", **kwargs})
    assert message in str(info.value)


def test_argument_errors_render_with_other_names(shape_png):
    with pytest.raises(ArgumentError) as info:
        absgrad.explain_file(shape_png, model="synthetic", method="vg", layer="block2")
    assert info.value.render(lambda n: f"--{n}") == (
        "--layer applies to --method gradcam, not to 'vg'"
    )


def test_missing_image_file(tmp_path):
    with pytest.raises(MissingFileError, match="image file not found: .*nope.png"):
        absgrad.explain_file(tmp_path / "nope.png", model="synthetic")


def test_save_writes_the_overlay_and_the_map(shape_png, tmp_path):
    e = absgrad.explain_file(shape_png, model="synthetic", method="vg")
    png, npy = absgrad.save_explanation(e, tmp_path / "maps" / "vg.png")
    assert (png, npy) == (tmp_path / "maps" / "vg.png", tmp_path / "maps" / "vg.npy")
    np.testing.assert_array_equal(np.load(npy), e.map.numpy())
    with Image.open(png) as im:  # the photo and the overlay side by side, wider than tall
        assert im.size[0] > 1.5 * im.size[1] > 150
    png, _ = absgrad.save_explanation(e, f"{tmp_path}/folder/")
    assert png == tmp_path / "folder" / "shape-vg.png" and png.is_file()
    with pytest.raises(ArgumentError, match=r"^out .*map\.txt: give a file name ending in \.png"):
        absgrad.save_explanation(e, tmp_path / "map.txt")
