"""Bad input gives clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from absgrad.errors import InputError
from absgrad.metrics import (
    deletion_insertion,
    lc_dice,
    mae,
    pointing_game,
    rcap,
    rcap_percentiles,
    target_probs,
)


@pytest.fixture
def maps() -> torch.Tensor:
    return torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))


def test_shape_mismatch(tiny_model, tiny_inputs, maps):
    with pytest.raises(ValueError, match="does not match the inputs"):
        rcap(tiny_model, tiny_inputs, 0, maps[:, :8])
    with pytest.raises(ValueError, match="does not match the inputs"):
        deletion_insertion(tiny_model, tiny_inputs, 0, maps[:1])
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        rcap(tiny_model, tiny_inputs, 0, maps[0])
    with pytest.raises(ValueError, match="does not match maps"):
        mae(maps, torch.ones(2, 8, 8))


def test_nan_and_negative_maps(tiny_model, tiny_inputs, maps):
    bad = maps.clone()
    bad[0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rcap(tiny_model, tiny_inputs, 0, bad)
    with pytest.raises(ValueError, match="NaN"):
        deletion_insertion(tiny_model, tiny_inputs, 0, bad)
    with pytest.raises(ValueError, match="NaN"):
        lc_dice(bad, torch.ones(2, 16, 16))
    with pytest.raises(ValueError, match="negative"):
        rcap(tiny_model, tiny_inputs, 0, maps - 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mae(maps * 2, torch.ones(2, 16, 16))


def test_non_binary_masks(maps):
    with pytest.raises(ValueError, match="binary"):
        lc_dice(maps, maps)
    with pytest.raises(ValueError, match="binary"):
        pointing_game(maps, torch.full((2, 16, 16), 2))
    with pytest.raises(TypeError, match="masks"):
        mae(maps, maps.numpy())


def test_no_percentile():
    with pytest.raises(ValueError, match="no percentile"):
        rcap_percentiles(1.0, 0.1)
    with pytest.raises(ValueError, match="no percentile"):
        rcap_percentiles(-0.1, 0.1)
    with pytest.raises(ValueError, match="interval"):
        rcap_percentiles(0.5, 0.0)
    with pytest.raises(TypeError, match="lower_bound"):
        rcap_percentiles("0.5", 0.1)  # type: ignore[arg-type]


def test_bad_model_output(tiny_inputs, maps):
    with pytest.raises(ValueError, match=r"\(B, K\) logits"):
        rcap(nn.Conv2d(3, 2, 1), tiny_inputs, 0, maps)
    with pytest.raises(ValueError, match=r"\(B, K\) logits"):
        deletion_insertion(nn.Flatten(0), tiny_inputs, 0, maps)
    with pytest.raises(TypeError, match="logits tensor"):
        target_probs(lambda x: x.tolist(), tiny_inputs, 0)
    with pytest.raises(TypeError, match="model"):
        rcap("resnet", tiny_inputs, 0, maps)


def test_bad_target(tiny_model, tiny_inputs, maps):
    # the project's error, naming the class count, for too large and negative (issue 23, item 10)
    with pytest.raises(InputError, match="target 5 is out of range for a model with 5 classes"):
        rcap(tiny_model, tiny_inputs, 5, maps)
    with pytest.raises(InputError, match="target -1 is out of range for a model with 5"):
        deletion_insertion(tiny_model, tiny_inputs, [0, -1], maps)
    with pytest.raises(ValueError, match="entries"):
        rcap(tiny_model, tiny_inputs, [0, 1, 2], maps)
    with pytest.raises(TypeError, match="integer"):
        rcap(tiny_model, tiny_inputs, torch.tensor([0.0, 1.0]), maps)


def test_bad_options(tiny_model, tiny_inputs, maps):
    with pytest.raises(ValueError, match="channels"):
        rcap(tiny_model, tiny_inputs, 0, maps, normalization=((0.5, 0.5), (0.5, 0.5)))
    with pytest.raises(ValueError, match="std"):
        rcap(tiny_model, tiny_inputs, 0, maps, normalization=((0.5,) * 3, (0.0,) * 3))
    with pytest.raises(TypeError, match="normalization"):
        rcap(tiny_model, tiny_inputs, 0, maps, normalization=0.5)
    with pytest.raises(ValueError, match="batch_size"):
        rcap(tiny_model, tiny_inputs, 0, maps, batch_size=0)
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion(tiny_model, tiny_inputs, 0, maps, steps=0)
    with pytest.raises(ValueError, match="clean_probs"):
        deletion_insertion(tiny_model, tiny_inputs, 0, maps, clean_probs=torch.ones(3))
    with pytest.raises(ValueError, match="blurred_probs"):
        deletion_insertion(tiny_model, tiny_inputs, 0, maps, blurred_probs=torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="top"):
        pointing_game(maps, maps > 0.5, top=0.0)


def test_bad_inputs(tiny_model, maps):
    with pytest.raises(TypeError, match="inputs"):
        rcap(tiny_model, maps.numpy(), 0, maps)
    with pytest.raises(ValueError, match="NaN"):
        rcap(tiny_model, torch.full((2, 3, 16, 16), float("nan")), 0, maps)
