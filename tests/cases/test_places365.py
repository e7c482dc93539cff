"""places365: val_256 + list files, 224 center crop, the CSAIL DenseNet checkpoint key renaming."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import DenseNet, densenet161

from absgrad.cases import get_case
from absgrad.models import CheckpointError, strip_prefixes
from absgrad.models.builtin import rename_densenet_keys

CATEGORY_LINES = ["/a/airfield 0", "/a/airplane_cabin 1", "/a/airport_terminal 2"] + [
    f"/z/category_{i} {i}" for i in range(3, 365)
]


def _old_style(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys as the 2017 CSAIL checkpoint stores them: module.-prefixed, norm.1 instead of norm1."""
    old = {}
    for k, v in state.items():
        k = re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k)
        old["module." + k] = v
    return old


def _small_densenet() -> DenseNet:
    return DenseNet(
        growth_rate=4, block_config=(1, 1, 1, 1), num_init_features=8, bn_size=2, num_classes=365
    )


def _write_places(
    root, files=(("Places365_val_00000001.jpg", 0), ("Places365_val_00000002.jpg", 364))
):
    (root / "val_256").mkdir(parents=True)
    (root / "categories_places365.txt").write_text("\n".join(CATEGORY_LINES) + "\n")
    (root / "places365_val.txt").write_text("".join(f"{f} {c}\n" for f, c in files))
    rng = np.random.default_rng(0)
    for f, _ in files:
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
            root / "val_256" / f
        )
    return root


def test_renaming_maps_every_real_densenet161_key() -> None:
    model = densenet161(weights=None, num_classes=365)
    new = model.state_dict()
    old = _old_style(new)
    assert "module.features.denseblock1.denselayer1.norm.1.weight" in old
    assert "module.features.denseblock4.denselayer24.conv.2.weight" in old
    renamed = strip_prefixes(old, set(new), rename_densenet_keys)  # as the builder reads it
    assert list(renamed) == list(new)
    assert renamed["classifier.weight"].shape == (365, 2208)


def test_loader_reads_lists_and_crops_224(tmp_path) -> None:
    case = get_case("places365", data=_write_places(tmp_path))
    assert case.categories[0] == "/a/airfield" and len(case.categories) == 365
    ds = case.samples()
    assert ds.ids == ["Places365_val_00000001", "Places365_val_00000002"]
    assert [r.label for r in ds.records] == [0, 364]
    s = ds[0]
    assert s.image.shape == (3, 224, 224) and s.mask is None
    # the crop is the center of the 256 x 256 photo
    full = torch.from_numpy(np.array(Image.open(ds.records[0].path))).permute(2, 0, 1).float() / 255
    assert torch.allclose(s.image, full[:, 16:240, 16:240], atol=1e-6)


def test_csail_checkpoint_loads_with_the_renaming(tmp_path) -> None:
    root = _write_places(tmp_path / "data")
    torch.manual_seed(0)
    ref = _small_densenet().eval()
    ckpt = {
        "epoch": 90,
        "arch": "densenet161",
        "state_dict": _old_style(ref.state_dict()),
        "best_prec1": 56.1,
    }
    path = tmp_path / "densenet161_places365.pth.tar"
    torch.save(ckpt, path)
    case = get_case("places365", data=root, weights=path, arch=_small_densenet)
    model = case.build_model()
    x = case.normalize(case.samples()[0].image[None])
    with torch.inference_mode():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    assert case.gradcam_layer in dict(model.named_modules())
    # the same checkpoint does not fit the real DenseNet-161: the error names the keys
    with pytest.raises(CheckpointError, match=r"missing keys: .*denseblock1\.denselayer2"):
        get_case("places365", data=root, weights=path).build_model()


def test_missing_files_and_bad_lists_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="Places365 folder not found .*places365_val.txt"):
        get_case("places365", data=tmp_path / "absent")
    root = _write_places(tmp_path / "p")
    (root / "places365_val.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match="places365_val.txt not found in .*filelist_places365-standard"
    ):
        get_case("places365", data=root)
    (root / "places365_val.txt").write_text("Places365_val_00000001.jpg 365\n")
    with pytest.raises(ValueError, match="line 1: expected '<file>.jpg <label in 0..364>'"):
        get_case("places365", data=root).samples()
    (root / "categories_places365.txt").write_text("/a/airfield 0\n")
    with pytest.raises(ValueError, match="lists 1 categories, Places365 has 365"):
        get_case("places365", data=root)
    with pytest.raises(FileNotFoundError, match="densenet161_places365.pth.tar"):
        get_case("places365", data=_write_places(tmp_path / "q")).build_model()
    with pytest.raises(
        FileNotFoundError, match="DenseNet-161 Places365 weights not found at .*nope.tar"
    ):
        get_case("places365", data=tmp_path / "q", weights=tmp_path / "nope.tar").build_model()


def test_unreadable_photo_is_skipped_and_named(tmp_path) -> None:
    root = _write_places(tmp_path)
    good = root / "val_256" / "Places365_val_00000002.jpg"
    good.write_bytes(good.read_bytes()[:4000])  # truncated: the header reads, the pixels do not
    ds = get_case("places365", data=root).samples()
    assert len(ds) == 2
    with pytest.raises(OSError, match="cannot decode image .*Places365_val_00000002.jpg"):
        ds[1]
    with pytest.warns(UserWarning, match="skipping unreadable file .*Places365_val_00000002.jpg"):
        kept = list(ds)
    assert [s.id for s in kept] == ["Places365_val_00000001"] and ds.num_skipped == 1
