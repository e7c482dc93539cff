"""Each sampler against an independent computation written here, on a tiny double-precision model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import absgrad
from absgrad.methods.blur import gaussian_blur


def _grad(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    model(x).gather(1, target[:, None]).sum().backward()
    return x.grad.detach()


T = torch.tensor([1, 3])


def test_vg_is_the_input_gradient(dmodel, x):
    a = absgrad.attribute(dmodel, x, T, "vg")
    torch.testing.assert_close(a, _grad(dmodel, x, T))


def test_sg_with_explicit_noise_is_mean_of_separate_gradients(dmodel, x):
    noise = torch.randn(6, *x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    grads = torch.stack([_grad(dmodel, x + noise[i], T) for i in range(6)])
    for bs in (1, 3, 64):  # chunking must not change the result
        a = absgrad.attribute(dmodel, x, T, "sg", n_samples=6, noise=noise, batch_size=bs)
        torch.testing.assert_close(a, grads.mean(0))
    v = absgrad.attribute(dmodel, x, T, "vargrad", n_samples=6, noise=noise)
    torch.testing.assert_close(v, grads.var(0))
    q = torch.quantile(grads.var(0).flatten(2), 0.85, dim=2)[..., None, None]
    guide = torch.where(grads.var(0) > q, 1.0, grads.var(0))
    gag = absgrad.attribute(dmodel, x, T, "gag", n_samples=6, noise=noise, batch_size=5)
    torch.testing.assert_close(gag, guide * grads.abs().sum(0))


def _scipy_blur(x: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    if sigma == 0:
        return x
    arr = ndimage.gaussian_filter(
        x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", radius=(0, 0, radius, radius)
    )
    return torch.from_numpy(arr)


def test_blur_matches_scipy_mirror():
    x = torch.rand(2, 3, 48, 50, dtype=torch.float64)
    for s in (0.5, 3.0, 50.0):
        torch.testing.assert_close(gaussian_blur(x, s, 41), _scipy_blur(x, s, 20))


def test_blurig_equals_explicit_path(dmodel):
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    n, max_sigma, d = 6, 10.0, 0.01
    sig = [k * max_sigma / n for k in range(n + 1)]
    samples = []
    for k in range(n):
        xb = _scipy_blur(x, sig[k], 20)
        deriv = (_scipy_blur(x, sig[k] + d, 20) - xb) / d
        samples.append((sig[k + 1] - sig[k]) * _grad(dmodel, xb, T).clamp(min=0) * deriv)
    got = absgrad.attribute(
        dmodel, x, T, "blurig", n_samples=n, max_sigma=max_sigma, processing="pos", batch_size=4
    )
    torch.testing.assert_close(got, torch.stack(samples).mean(0))


def test_guided_ig_matches_pair_saliency(dmodel, x, monkeypatch):
    saliency = pytest.importorskip("saliency.core")
    # PAIR's saliency 0.2.1 calls np.quantile(..., interpolation=) which numpy 2 renamed to method=
    quantile = np.quantile
    monkeypatch.setattr(
        np,
        "quantile",
        lambda a, q, interpolation="linear", **kw: quantile(a, q, method=interpolation, **kw),
    )

    def call_model(xs, call_model_args=None, expected_keys=None):
        xt = torch.from_numpy(np.asarray(xs)).double()
        t = torch.full((xt.shape[0],), call_model_args, dtype=torch.long)
        return {saliency.base.INPUT_OUTPUT_GRADIENTS: _grad(dmodel, xt, t).numpy()}

    steps = 8
    # percentile 0: no guide, the plain sum of every round's contribution = PAIR's attribution
    got = absgrad.attribute(
        dmodel,
        x,
        T,
        "guidedig",
        n_samples=steps,
        fraction=0.25,
        max_dist=0.1,
        aggregation="guided",
        percentile=0.0,
    )
    for i in range(x.shape[0]):
        ref = saliency.GuidedIG().GetMask(
            x[i].numpy(),
            call_model,
            call_model_args=int(T[i]),
            x_baseline=np.zeros(x[i].shape),
            x_steps=steps,
            fraction=0.25,
            max_dist=0.1,
        )
        np.testing.assert_allclose(got[i].numpy(), ref, rtol=1e-6, atol=1e-9)


def _forward_sizes(model, fn):
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        out = fn()
    finally:
        handle.remove()
    return calls, out


def test_guided_ig_steps_the_batch_together(dmodel):
    # one gradient per image and step, in model calls of batch_size images (the last padded);
    # each image's map is the one it gets alone (float64: rounding cannot flip a decision here)
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3, 4])
    steps = 6
    calls, got = _forward_sizes(
        dmodel, lambda: absgrad.attribute(dmodel, x, t, "guidedig", n_samples=steps, batch_size=2)
    )
    assert calls == [2, 2, 2] * steps  # the fifth image's call padded to 2
    one, _ = _forward_sizes(
        dmodel, lambda: absgrad.attribute(dmodel, x[:1], t[:1], "guidedig", n_samples=2)
    )
    assert one == [4, 4]  # alone: a call of batch_size (4) images all the same
    alone = [
        absgrad.attribute(dmodel, x[i : i + 1], t[i : i + 1], "guidedig", n_samples=steps)
        for i in range(5)
    ]
    torch.testing.assert_close(got, torch.cat(alone), atol=1e-12, rtol=0)
    # images take different numbers of rounds, so some rounds leave an image idle
    assert len(set(_round_counts(dmodel, x, t, steps).tolist())) > 1


def test_guided_ig_leaves_an_image_equal_to_the_baseline_out(dmodel, x):
    # an image at the baseline gets no gradient and a zero map; the others are unchanged
    xs = torch.cat([torch.zeros_like(x[:1]), x[:1]])
    t = torch.tensor([0, 1])
    calls, got = _forward_sizes(
        dmodel,
        lambda: absgrad.attribute(dmodel, xs, t, "guidedig", n_samples=4, batch_size=1),
    )
    assert calls == [1] * 4
    assert (got[0] == 0).all()
    alone = absgrad.attribute(dmodel, x[:1], t[1:], "guidedig", n_samples=4, batch_size=1)
    torch.testing.assert_close(got[1:], alone, atol=1e-12, rtol=0)


def _round_counts(model, x, t, steps):
    """How many samples (rounds) Guided IG takes per image."""
    from absgrad.methods.aggregators import SampleStats
    from absgrad.methods.samplers import GradContext, GuidedPathSampler

    stats = SampleStats(["raw"])
    GuidedPathSampler(n_samples=steps).run(GradContext(model, x, t), stats)
    return stats.count


def test_gradcam_equals_explicit_formula(dmodel, x):
    feats = {}
    h = dmodel.features.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    xr = x.clone().requires_grad_(True)
    out = dmodel(xr)
    h.remove()
    a = feats["a"]
    (g,) = torch.autograd.grad(out.gather(1, T[:, None]).sum(), a)
    cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    got = absgrad.attribute(dmodel, x, T, "gradcam", layer="features")
    torch.testing.assert_close(got, cam.detach())  # same size: no upsampling needed here


def test_objectives_flip_and_scale(dmodel, x):
    logit = absgrad.attribute(dmodel, x, T, "vg", objective="logit")
    nll = absgrad.attribute(dmodel, x, T, "vg", objective="nll")
    lsm = absgrad.attribute(dmodel, x, T, "vg", objective="log_softmax")
    torch.testing.assert_close(nll, -lsm)
    assert not torch.allclose(logit, lsm)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # a = q(term * p(g)): p on the gradient before its path term, |.| again on the sample for abs
        ("gradient", {"raw": [2.0, 6.0], "pos": [0.0, 6.0], "neg": [2.0, 0.0], "abs": [2.0, 6.0]}),
        # a = q(p(term * g)): p on the product (Guided IG's move contributions)
        ("product", {"raw": [2.0, 6.0], "pos": [2.0, 6.0], "neg": [0.0, 0.0], "abs": [2.0, 6.0]}),
    ],
)
def test_a_sampler_declares_where_processing_applies(at, expected):
    from absgrad.methods.aggregators import SampleStats, aggregate
    from absgrad.methods.samplers import GradContext, Sampler, Samples

    grad = torch.tensor([-2.0, 3.0]).view(1, 1, 1, 1, 2)
    term = torch.tensor([-1.0, 2.0]).view(1, 1, 1, 1, 2)

    class Fixed(Sampler):
        processing_at = at

        def pieces(self, ctx):
            yield Samples(slice(0, 1), grad, term)

    stats = SampleStats(["raw", "pos", "neg", "abs"])
    Fixed().run(GradContext(torch.nn.Identity(), torch.zeros(1, 1, 1, 2), torch.zeros(1)), stats)
    for p, values in expected.items():
        assert aggregate(stats, p, "mean").flatten().tolist() == values, p
