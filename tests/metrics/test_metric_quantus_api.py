"""Quantus-style metric objects: numpy or torch in, per-image scores out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from absgrad.metrics import (
    DAUC,
    IAUC,
    MAE,
    RCAP,
    SYMMETRIC,
    LcDice,
    MAESqrtPaper,
    ModelParameterRandomisation,
    PointingGame,
    deletion_insertion,
    lc_dice,
    mae,
    pointing_game,
    rcap,
)


def _minmax_loop(a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape, dtype=np.float64)
    for i in range(a.shape[0]):
        lo, hi = a[i].min(), a[i].max()
        out[i] = (a[i] - lo) / (hi - lo)
    return out


@pytest.fixture
def batch(tiny_inputs):
    rng = np.random.default_rng(0)
    x = tiny_inputs.numpy()
    y = np.array([1, 3])
    a = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    s = (rng.random((2, 16, 16)) > 0.5).astype(np.float32)
    return x, y, a, s


def test_rcap_object_on_numpy(tiny_model, batch):
    x, y, a, _ = batch
    maps = torch.from_numpy(_minmax_loop(np.abs(a).sum(axis=1))).float()
    scores = RCAP(normalization=SYMMETRIC)(model=tiny_model, x_batch=x, y_batch=y, a_batch=a)
    expected = rcap(tiny_model, torch.from_numpy(x), [1, 3], maps, normalization=SYMMETRIC)
    assert isinstance(scores, list) and len(scores) == 2
    assert scores == pytest.approx(expected.score.tolist(), abs=1e-6)


@pytest.mark.parametrize("shape", ["bhw", "b1hw"])
def test_single_channel_attributions(tiny_model, batch, shape):
    x, y, _, _ = batch
    maps = np.random.default_rng(1).random((2, 16, 16)).astype(np.float32)
    a = maps if shape == "bhw" else maps[:, None]
    metric = RCAP(lower_bound=0.6, interval=0.15)
    scores = metric(model=tiny_model, x_batch=x, y_batch=y, a_batch=a)
    expected = rcap(
        tiny_model,
        torch.from_numpy(x),
        [1, 3],
        torch.from_numpy(_minmax_loop(maps)).float(),
        lower_bound=0.6,
        interval=0.15,
    )
    assert scores == pytest.approx(expected.score.tolist(), abs=1e-6)
    assert metric.evaluation_scores == scores
    assert metric.last_result.percentiles == (0.6, 0.75, 0.9)


def test_auc_objects(tiny_model):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 20, 20)).astype(np.float32)
    a = rng.random((2, 20, 20)).astype(np.float32)
    d = DAUC()(model=tiny_model, x_batch=x, y_batch=np.array([0, 1]), a_batch=a)
    i = IAUC(steps=5)(model=tiny_model, x_batch=torch.from_numpy(x), y_batch=[0, 1], a_batch=a)
    ref10 = deletion_insertion(tiny_model, torch.from_numpy(x), [0, 1], torch.from_numpy(a))
    ref5 = deletion_insertion(tiny_model, torch.from_numpy(x), [0, 1], torch.from_numpy(a), steps=5)
    # AUC depends only on the ranking, which min-max scaling keeps
    assert d == pytest.approx(ref10.dauc_per_image.tolist(), abs=1e-6)
    assert i == pytest.approx(ref5.iauc_per_image.tolist(), abs=1e-6)
    assert np.mean(d) == pytest.approx(ref10.dauc, abs=1e-6)


def test_segmentation_objects(batch):
    x, y, a, s = batch
    maps = torch.from_numpy(_minmax_loop(np.abs(a).sum(axis=1))).float()
    masks = torch.from_numpy(s)
    kw = dict(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)
    assert LcDice()(**kw) == pytest.approx(lc_dice(maps, masks).tolist(), abs=1e-6)
    assert MAE()(**kw) == pytest.approx(mae(maps, masks).tolist(), abs=1e-6)
    assert MAESqrtPaper()(**kw) == pytest.approx(mae(maps, masks).sqrt().tolist(), abs=1e-6)
    kw["s_batch"] = s[:, None]
    assert PointingGame()(**kw) == pointing_game(maps, masks).tolist()
    with pytest.raises(ValueError, match="s_batch"):
        MAE()(model=None, x_batch=x, y_batch=y, a_batch=a)


def test_explain_func_and_channel_last(tiny_model, batch):
    x, y, a, _ = batch
    calls = []

    def explain_func(model, inputs, targets, **kwargs):
        calls.append((type(inputs), kwargs))
        return a

    channel_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    got = RCAP()(
        model=tiny_model,
        x_batch=channel_last,
        y_batch=y,
        explain_func=explain_func,
        explain_func_kwargs={"method": "x"},
        channel_first=False,
        softmax=True,
    )
    want = RCAP()(model=tiny_model, x_batch=x, y_batch=y, a_batch=a)
    assert got == pytest.approx(want, abs=1e-6)
    assert calls == [(np.ndarray, {"method": "x"})]


def test_model_parameter_randomisation_object(tiny_model, batch):
    x, y, _, _ = batch
    fixed = np.random.default_rng(3).random((2, 16, 16)).astype(np.float32)
    metric = ModelParameterRandomisation(layers=["fc", "features.2"])
    out = metric(
        model=tiny_model, x_batch=x, y_batch=y, explain_func=lambda model, inputs, targets: fixed
    )
    assert list(out) == ["fc", "features.2"]
    assert out["fc"] == pytest.approx([1.0, 1.0])


def test_object_bad_input(tiny_model, batch):
    x, y, a, _ = batch
    with pytest.raises(ValueError, match="a_batch, or explain_func"):
        RCAP()(model=tiny_model, x_batch=x, y_batch=y)
    with pytest.raises(TypeError, match="unexpected keyword"):
        RCAP()(model=tiny_model, x_batch=x, y_batch=y, a_batch=a, bogus=1)
    with pytest.raises(TypeError, match="a_batch"):
        RCAP()(model=tiny_model, x_batch=x, y_batch=y, a_batch="map")
    with pytest.raises(ValueError, match="no percentile"):
        RCAP(lower_bound=1.5)
    nan_a = a.copy()
    nan_a[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RCAP()(model=tiny_model, x_batch=x, y_batch=y, a_batch=nan_a)
