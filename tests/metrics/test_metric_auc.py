"""Deletion / insertion against the plain-loop oracle, the blur, and the AUC convention."""

from __future__ import annotations

import pytest
import scipy.ndimage
import torch
from torchvision.transforms.functional import gaussian_blur as tv_blur

from absgrad.metrics import auc, blurred, deletion_insertion, target_probs
from support.metrics_oracle import curves_loop, trapezoid


@pytest.fixture
def inputs20() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randn(2, 3, 20, 20, generator=g)


@pytest.fixture
def maps20() -> torch.Tensor:
    g = torch.Generator().manual_seed(6)
    return torch.rand(2, 20, 20, generator=g)


def test_curves_match_loops(tiny_model, inputs20, maps20):
    res = deletion_insertion(tiny_model, inputs20, [1, 4], maps20)
    dels, inss = curves_loop(tiny_model, inputs20, [1, 4], maps20)
    assert res.deletion.shape == res.insertion.shape == (2, 10)
    for i in range(2):
        assert res.deletion[i].tolist() == pytest.approx(dels[i], abs=1e-6)
        assert res.insertion[i].tolist() == pytest.approx(inss[i], abs=1e-6)
    mean_del = [(a + b) / 2 for a, b in zip(dels[0], dels[1], strict=True)]
    mean_ins = [(a + b) / 2 for a, b in zip(inss[0], inss[1], strict=True)]
    assert res.dauc == pytest.approx(trapezoid(mean_del), abs=1e-6)
    assert res.iauc == pytest.approx(trapezoid(mean_ins), abs=1e-6)
    assert res.dauc_per_image.tolist() == pytest.approx([trapezoid(d) for d in dels], abs=1e-6)
    assert res.iauc_per_image.tolist() == pytest.approx([trapezoid(c) for c in inss], abs=1e-6)


def test_other_step_count_matches_loops(tiny_model, inputs20, maps20):
    res = deletion_insertion(tiny_model, inputs20, [0, 2], maps20, steps=7)
    dels, inss = curves_loop(tiny_model, inputs20, [0, 2], maps20, steps=7)
    assert res.deletion.tolist()[1] == pytest.approx(dels[1], abs=1e-6)
    assert res.insertion.tolist()[0] == pytest.approx(inss[0], abs=1e-6)
    assert res.fractions == tuple(k / 7 for k in range(7))


def test_r0_is_clean_and_blurred(tiny_model, inputs20, maps20):
    res = deletion_insertion(tiny_model, inputs20, [1, 4], maps20)
    clean = target_probs(tiny_model, inputs20, [1, 4])
    blur = target_probs(tiny_model, blurred(inputs20), [1, 4])
    with torch.no_grad():
        manual = torch.softmax(tiny_model(inputs20), 1)[[0, 1], [1, 4]]
    assert clean.tolist() == pytest.approx(manual.tolist(), abs=1e-6)
    assert res.deletion[:, 0].tolist() == pytest.approx(clean.tolist(), abs=1e-6)
    assert res.insertion[:, 0].tolist() == pytest.approx(blur.tolist(), abs=1e-6)


def test_precomputed_probs_skip_r0_passes(tiny_model, inputs20, maps20):
    full = deletion_insertion(tiny_model, inputs20, [1, 4], maps20)
    clean = target_probs(tiny_model, inputs20, [1, 4])
    blur = target_probs(tiny_model, blurred(inputs20), [1, 4])
    sizes = []
    handle = tiny_model.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    fast = deletion_insertion(
        tiny_model, inputs20, [1, 4], maps20, clean_probs=clean, blurred_probs=blur, batch_size=16
    )
    handle.remove()
    assert sum(sizes) == 2 * (9 + 9)
    assert max(sizes) <= 16
    assert torch.allclose(fast.deletion, full.deletion, atol=1e-6)
    assert torch.allclose(fast.insertion, full.insertion, atol=1e-6)
    assert fast.dauc == pytest.approx(full.dauc, abs=1e-6)


def test_auc_convention():
    assert float(auc(torch.ones(10))) == pytest.approx(0.9)
    assert float(auc(torch.zeros(10))) == 0.0
    curve = torch.tensor([1.0, 0.5, 0.25, 0.0])
    assert float(auc(curve)) == pytest.approx(((1 + 0.5) + (0.5 + 0.25) + 0.25) / 2 / 4)
    two = auc(torch.stack([torch.ones(10), torch.zeros(10)]))
    assert two.tolist() == pytest.approx([0.9, 0.0])


def test_blur_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 40, 37, generator=g)
    ours = blurred(x, kernel_size=33, sigma=16.0)
    ref = tv_blur(x, [33, 33], [16.0, 16.0])
    assert torch.allclose(ours, ref, atol=1e-5)


def test_blur_on_images_smaller_than_the_kernel():
    # torchvision refuses; we keep reflecting, as scipy's 'mirror' mode does.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 9, 12, generator=g, dtype=torch.float64)
    ours = blurred(x, kernel_size=33, sigma=16.0)
    xs = [float(v) - 16 for v in range(33)]
    w = [pow(2.718281828459045, -0.5 * (v / 16.0) ** 2) for v in xs]
    w = [v / sum(w) for v in w]
    ref = x[0].numpy()
    ref = scipy.ndimage.correlate1d(ref, w, axis=1, mode="mirror")
    ref = scipy.ndimage.correlate1d(ref, w, axis=2, mode="mirror")
    assert torch.allclose(ours[0], torch.from_numpy(ref), atol=1e-9)
