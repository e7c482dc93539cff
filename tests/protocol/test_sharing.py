"""Sharing is real: each sampler runs once per image batch, however many maps it serves."""

from __future__ import annotations

import torch
from torch import nn

from absgrad.protocol import build_context, make_config, run_protocol
from absgrad.protocol.catalogue import ABLATION_P, gag_label
from support.paper import PAPER_MAPS

NOISE_MAPS = ["sg", "vargrad", "sg-pos", "sg-neg", "sg-g", *(gag_label(p) for p in ABLATION_P)]


class PassCounter:
    """Hooks on a model that count images through gradient (backward) and inference passes."""

    def __init__(self) -> None:
        self.backward_images = 0
        self.backward_calls = 0
        self.forward_images = 0

    def __call__(self, model: nn.Module) -> nn.Module:
        model.register_forward_hook(self._on_forward)
        return model

    def _on_forward(self, _module, inputs, output) -> None:
        self.forward_images += inputs[0].shape[0]
        if output.requires_grad:
            output.register_hook(self._on_backward)

    def _on_backward(self, grad: torch.Tensor) -> None:
        self.backward_calls += 1
        self.backward_images += grad.shape[0]


def _run(tmp_path, maps, *, n_samples=4, limit=4, **extra):
    config = make_config(
        {"case": "synthetic"},
        {"maps": maps, "metrics": ["rcap"], "n_samples": n_samples, "limit": limit, **extra},
    )
    counter = PassCounter()
    ctx = build_context(config, model_wrapper=counter)
    meta = run_protocol(config, tmp_path / "out", context=ctx, quiet=True)
    return counter, ctx, meta


def test_noise_sampler_runs_once_per_batch_for_all_noise_maps(tmp_path):
    one, _, meta_one = _run(tmp_path / "one", ["sg"])
    many, _, meta_many = _run(tmp_path / "many", NOISE_MAPS)
    assert meta_one["n_units"] == meta_many["n_units"] == 1  # 4 images = 1 batch, 1 group
    assert len(meta_many["maps"]) == 14
    # 4 noise samples x 4 images, whether 1 or 14 maps are derived from them
    assert one.backward_images == many.backward_images == 4 * 4


def test_whole_protocol_costs_one_run_per_sampler(tmp_path):
    counter, ctx, meta = _run(tmp_path, None, n_samples=3, ig_trials=2, ig_steps=1, limit=8)
    assert len(ctx.specs) == PAPER_MAPS and len(meta["groups"]) == 10  # every map of the paper
    assert meta["n_units"] == 2 * 10  # 8 images in 2 batches of 4, 10 sampler groups
    # per image: noise 3 + IG 2x1 + Guided IG 3 + BlurIG 3 + VG 1 + 4 GB hooks + Grad-CAM 1
    assert counter.backward_images == (3 + 2 + 3 + 3 + 1 + 4 + 1) * 8
    # each batch's clean and blurred predictions are computed once, for all the maps
    assert ctx.stats["clean_passes"] == 2
    assert ctx.stats["batches_loaded"] == 2
