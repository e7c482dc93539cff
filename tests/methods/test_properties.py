"""Properties every map must have, checked with hypothesis on random inputs and models."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import absgrad

FAST = {
    "sg": {"n_samples": 3},
    "vargrad": {"n_samples": 3},
    "gag": {"n_samples": 3},
    "ig": {"n_samples": 2, "steps": 3},
    "blurig": {"n_samples": 3},
    "guidedig": {"n_samples": 3},
    "vg": {},
    "gb": {},
    "gradcam": {},
}

COMMON = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@COMMON
@given(method=st.sampled_from(sorted(FAST)), seed=st.integers(0, 2**16), scale=st.floats(0.01, 100))
def test_maps_are_in_unit_range_with_min0_max1(tiny_model, method, seed, scale):
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(seed)) * scale
    m = absgrad.explain(
        tiny_model, x, None, method, generator=torch.Generator().manual_seed(seed), **FAST[method]
    )
    assert m.shape == (2, 12, 12) and m.dtype == torch.float32
    assert torch.isfinite(m).all()
    assert (m >= 0).all() and (m <= 1).all()
    for img in m:
        if img.max() > img.min():
            assert img.min() == 0 and img.max() == 1
        else:
            assert (img == 1).all()


class _Flat(torch.nn.Module):
    """Zero gradients everywhere: the output is multiplied by 0."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x)).mean((2, 3)) * 0.0


class _Dead(_Flat):
    """Zero gradients through dead ReLUs (every pre-activation < 0), non-zero logits."""

    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(-1.0)

    def forward(self, x):
        return self.act(self.conv(x)).mean((2, 3)) + torch.tensor([1.0, 0.0])


@pytest.mark.parametrize("model_cls", [_Flat, _Dead])
@pytest.mark.parametrize("method", sorted(FAST))
def test_constant_inputs_and_zero_gradients_give_no_nan(method, model_cls):
    model = model_cls().eval()
    layer = {"layer": "conv"} if method == "gradcam" else {}
    for x in (torch.zeros(1, 3, 8, 8), torch.full((2, 3, 8, 8), 0.3)):
        m = absgrad.explain(model, x, 0, method, **layer, **FAST[method])
        assert m.shape == (x.shape[0], 8, 8)
        assert torch.isfinite(m).all()
        assert (m == 1).all()  # a constant map becomes all ones


@COMMON
@given(method=st.sampled_from(["sg", "vargrad", "gag", "ig"]), seed=st.integers(0, 2**31 - 1))
def test_same_seed_same_map_other_seed_other_map(tiny_model, tiny_inputs, method, seed):
    a = absgrad.explain(
        tiny_model,
        tiny_inputs,
        1,
        method,
        generator=torch.Generator().manual_seed(seed),
        **FAST[method],
    )
    b = absgrad.explain(
        tiny_model,
        tiny_inputs,
        1,
        method,
        generator=torch.Generator().manual_seed(seed),
        **FAST[method],
    )
    c = absgrad.explain(
        tiny_model,
        tiny_inputs,
        1,
        method,
        generator=torch.Generator().manual_seed(seed + 1),
        **FAST[method],
    )
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_model_state_is_restored(tiny_model, tiny_inputs):
    tiny_model.train()
    tiny_model.fc.weight.requires_grad_(False)
    absgrad.explain(tiny_model, tiny_inputs, 0, "gag", n_samples=3)
    assert tiny_model.training
    assert not tiny_model.fc.weight.requires_grad and tiny_model.fc.bias.requires_grad
    with pytest.raises(ValueError):
        absgrad.explain(tiny_model, tiny_inputs, 99, "gb")
    assert tiny_model.training and tiny_model.fc.bias.requires_grad
    # guided-backprop patches are gone after an error too
    assert all("forward" not in m.__dict__ for m in tiny_model.modules())


_MEM_SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch, absgrad
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.randn(4, 3, 192, 192)
    absgrad.explain(model, x, 0, "gag", n_samples=2, batch_size=4)  # warm up allocator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    absgrad.explain(model, x, 0, "gag", n_samples=int(sys.argv[1]), batch_size=4)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """
)


def test_gag_memory_does_not_grow_with_n(tmp_path):
    script = tmp_path / "mem.py"
    script.write_text(_MEM_SCRIPT)

    def peak_kib(n: int) -> int:
        out = subprocess.run(
            [sys.executable, str(script), str(n)], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    small, large = peak_kib(5), peak_kib(50)
    one_stack_of_45_kib = (
        45 * 4 * 3 * 192 * 192 * 4 // 1024
    )  # what stacking 45 more samples would cost
    print(
        f"\n[memory] GAG peak RSS growth: N=5 {small} KiB, N=50 {large} KiB; a stack would add {one_stack_of_45_kib} KiB"
    )
    assert large - small < one_stack_of_45_kib // 4


@pytest.mark.parametrize("method", sorted(FAST))
def test_maps_do_not_depend_on_the_batch(tiny_model, method):
    """With per-image seeds, every image's map is the same (1e-6) whether it is computed in
    batches of 1, 2, 3, 4 or 16 images and whatever the gradient chunk size."""
    n = 16
    x = torch.randn(n, 3, 12, 12, generator=torch.Generator().manual_seed(7))
    target = torch.arange(n) % 5
    seeds = [31, 41, 59, 26, 53, 58, 97, 93, 23, 84, 62, 64, 33, 83, 27, 95]
    ref = absgrad.explain(tiny_model, x, target, method, seeds=seeds, batch_size=4, **FAST[method])
    for bs in (1, 2, 3, 4, 16):
        parts = [
            absgrad.explain(
                tiny_model,
                x[i : i + bs],
                target[i : i + bs],
                method,
                seeds=seeds[i : i + bs],
                batch_size=bs,
                **FAST[method],
            )
            for i in range(0, n, bs)
        ]
        # Grad-CAM: one image's CAM peaks at 2e-4, and min-max scaling multiplies the rounding
        # of a batch-of-1 convolution by 5000 (measured 1.1e-6 at bs=1); no choice flips there
        atol = 2e-6 if method == "gradcam" else 1e-6
        torch.testing.assert_close(
            torch.cat(parts), ref, atol=atol, rtol=0, msg=f"{method} bs={bs}"
        )
    if method in ("sg", "vargrad", "gag", "ig"):  # the seeds matter: other seeds, other maps
        other = absgrad.explain(tiny_model, x, target, method, seeds=list(range(n)), **FAST[method])
        assert (other - ref).abs().max() > 1e-3
