"""Every documented bad input raises a clear error that names the problem."""

from __future__ import annotations

import pytest
import torch

import absgrad
from absgrad.errors import InputError


@pytest.mark.parametrize(
    "inputs, exc, match",
    [
        (torch.randn(3, 16, 16), ValueError, "rank 4"),
        (torch.randint(0, 5, (1, 3, 16, 16)), TypeError, "floating-point"),
        (torch.full((1, 3, 16, 16), float("nan")), ValueError, "NaN"),
        (torch.full((1, 3, 16, 16), float("inf")), ValueError, "NaN or infinite"),
        ([[1.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs(tiny_model, inputs, exc, match):
    with pytest.raises(exc, match=match):
        absgrad.explain(tiny_model, inputs, 0, "vg")


@pytest.mark.parametrize(
    "target, exc, match",
    [
        # the project's error for both, naming the class count (issue 23, item 10)
        (7, InputError, "target 7 is out of range for a model with 5 classes"),
        (-1, InputError, "target -1 is out of range for a model with 5 classes"),
        (torch.tensor([0, 1, 2]), ValueError, "3 entries but the batch has 2"),
        (torch.tensor([0.5, 1.0]), TypeError, "integer class"),
        ("cat", TypeError, "target must be"),
    ],
)
def test_bad_targets(tiny_model, tiny_inputs, target, exc, match):
    with pytest.raises(exc, match=match):
        absgrad.explain(tiny_model, tiny_inputs, target, "sg", n_samples=2)


@pytest.mark.parametrize(
    "method, params, exc, match",
    [
        ("magic", {}, ValueError, "unknown method 'magic'"),
        ("sg", {"n_sample": 5}, TypeError, "unknown parameter.*n_sample"),
        ("vargrad", {"n_samples": 1}, ValueError, "n_samples must be >= 2"),
        ("gag", {"n_samples": 1}, ValueError, "n_samples must be >= 2"),
        ("vg", {"aggregation": "guided"}, ValueError, "single sample"),
        ("gag", {"percentile": 1.0}, ValueError, r"percentile must be a number in \[0, 1\)"),
        ("gag", {"percentile": -0.1}, ValueError, "percentile"),
        ("sg", {"processing": "square"}, ValueError, "unknown processing"),
        ("sg", {"aggregation": "median"}, ValueError, "unknown aggregation"),
        ("sg", {"objective": "prob"}, ValueError, "unknown objective"),
        ("sg", {"batch_size": 0}, ValueError, "batch_size"),
        ("gradcam", {"layer": "layer9"}, ValueError, "Grad-CAM layer 'layer9' is not in the model"),
        ("gb", {"hook": "up"}, ValueError, "unknown guided-backprop hook"),
        (
            "sg",
            {"n_samples": 2, "noise": torch.zeros(3, 2, 3, 16, 16)},
            ValueError,
            "noise must have shape",
        ),
    ],
)
def test_bad_methods_and_params(tiny_model, tiny_inputs, method, params, exc, match):
    with pytest.raises(exc, match=match):
        absgrad.explain(tiny_model, tiny_inputs, 0, method, **params)


def test_not_a_model(tiny_inputs):
    with pytest.raises(TypeError, match="nn.Module"):
        absgrad.explain(lambda x: x, tiny_inputs, 0, "vg")


def test_model_without_logits(tiny_inputs):
    with pytest.raises(ValueError, match=r"\(B, K\) logits"):
        absgrad.explain(torch.nn.Conv2d(3, 2, 1), tiny_inputs, 0, "vg")


def test_gb_without_relu(tiny_inputs):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    with pytest.raises(ValueError, match="nn.ReLU"):
        absgrad.explain(model, tiny_inputs, 0, "gb")
