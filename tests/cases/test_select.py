"""Selection rule and cache, the registry, normalisation round trips."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from absgrad.cases import CASES, get_case, score_case, select
from absgrad.cases.base import IMAGENET_MEAN, IMAGENET_STD
from absgrad.cases.select import default_cache_dir, model_fingerprint


class CountingModel(nn.Module):
    """Wraps a model and counts forward calls, to prove that reruns hit the cache."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_registry_has_every_case_with_the_contract_fields() -> None:
    builtin = {"demo", "synthetic", "imagenet-sample", "imagenet-s", "isic", "places365"}
    assert set(CASES) == builtin | {"folder"}  # folder: the class count comes from the model
    layers = {n: c.gradcam_layer for n, c in CASES.items()}
    assert layers["imagenet-s"] == "layer4" and layers["places365"] == "features.denseblock4"
    assert layers["demo"] == layers["imagenet-sample"] == "blocks.6"
    for name, cls in CASES.items():
        mean, std = cls.normalization
        assert len(mean) == len(std) == 3 and (cls.num_classes > 1 or name == "folder")
        assert set(cls.reversal) == {"sg", "ig", "guidedig", "blurig", "gb"}
    assert CASES["imagenet-s"].has_masks and not CASES["places365"].has_masks
    assert CASES["imagenet-s"].normalization == (IMAGENET_MEAN, IMAGENET_STD)
    assert CASES["imagenet-sample"].normalization == ((0.5,) * 3, (0.5,) * 3)


def test_normalize_and_denormalize_are_inverse() -> None:
    pixels = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    case = get_case("synthetic", n=2)
    assert torch.allclose(case.normalize(pixels), pixels * 2 - 1)
    for name in ("demo", "synthetic"):
        c = get_case(name)
        assert torch.allclose(c.denormalize(c.normalize(pixels)), pixels, atol=1e-6)
    places_like = CASES["imagenet-s"].normalize(object.__new__(CASES["imagenet-s"]), pixels)
    assert torch.allclose(places_like[:, 0], (pixels[:, 0] - 0.485) / 0.229)


def test_select_keeps_confident_images_and_caches(tmp_path) -> None:
    case = get_case("synthetic", n=40)
    model = CountingModel(case.build_model())
    keep = select(case, model, cache_dir=tmp_path, batch_size=16)
    calls = model.calls
    assert calls == 3  # 40 images in batches of 16
    scores = score_case(case, model, cache_dir=tmp_path)
    assert model.calls == calls  # served from the cache
    assert keep == [i for i, s in enumerate(case.samples().ids) if scores[s][0] > 0.9]
    assert len(keep) >= 36  # the shipped model is confident on nearly all synthetic images
    # a different threshold reuses the cache; the file is JSON with the key fields
    t0 = time.perf_counter()
    assert select(case, model, threshold=0.0, cache_dir=tmp_path) == list(range(40))
    assert time.perf_counter() - t0 < 1.0 and model.calls == calls
    (cache_file,) = tmp_path.glob("select-synthetic-*.json")
    stored = json.loads(cache_file.read_text())
    assert stored["key"]["case"] == "synthetic" and stored["key"]["model"] == model_fingerprint(
        model
    )
    # another model (different weights) gets its own cache entry
    other = CountingModel(get_case("synthetic").build_model())
    with torch.no_grad():
        other.inner.fc.bias.add_(1.0)
    select(case, other, cache_dir=tmp_path)
    assert other.calls == 3 and len(list(tmp_path.glob("select-synthetic-*.json"))) == 2
    with pytest.raises(ValueError, match="threshold must lie in"):
        select(case, model, threshold=1.5, cache_dir=tmp_path)


def test_cache_dir_defaults_to_env_or_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ABSGRAD_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ABSGRAD_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "absgrad")


def test_unreadable_images_are_left_out_of_the_selection(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "sample"
    root.mkdir()
    rows = ["file,wnid,class_index,name"]
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), np.uint8)).save(root / f"img{i}.JPEG")
        rows.append(f"img{i}.JPEG,n0000000{i},{2 * i},thing{i}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    cut = root / "img1.JPEG"
    cut.write_bytes(cut.read_bytes()[:3000])  # header intact, pixels cut: fails when decoded
    case = get_case("imagenet-sample", data=root)
    torch.manual_seed(0)
    tiny = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1000))
    with pytest.warns(UserWarning, match="img1.JPEG"):
        keep = select(case, tiny, threshold=0.0, cache_dir=tmp_path / "cache")
    assert len(case.samples()) == 3  # the header check passed: it fails only when decoded
    assert keep == [0, 2] and case.samples().num_skipped == 1
    assert case.samples()[0].image.shape == (3, 224, 224)
