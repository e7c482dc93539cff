"""absgrad's metrics as torchmetrics Metrics: the functional numbers, torchmetrics' life cycle
(update, compute, forward, reset), and the errors."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("torchmetrics")

from torchmetrics import Metric, MetricCollection  # noqa: E402

from absgrad import names  # noqa: E402
from absgrad.errors import AbsgradError  # noqa: E402
from absgrad.metrics import METRICS, SYMMETRIC  # noqa: E402
from absgrad.metrics import torchmetrics as tm  # noqa: E402
from absgrad.report.stats import bootstrap_ci  # noqa: E402

B, H = 6, 16


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(5)
    return {
        "images": torch.randn(B, 3, H, H, generator=g),
        "targets": torch.tensor([0, 1, 2, 3, 4, 1]),
        "maps": torch.rand(B, H, H, generator=g),
        "masks": torch.rand(B, H, H, generator=g) > 0.5,
    }


def _make(key: str, **kw) -> tm.ScoreMetric:
    cls = tm.METRIC_CLASSES[key]
    if key == "rcap":
        return cls(SYMMETRIC, **kw)
    return cls(**kw)


def _functional(key, model, b) -> tuple[torch.Tensor, float]:
    """Per-image scores and the dataset value, from the functional metric alone."""
    d = METRICS[key]
    if d.needs_mask:
        s = d.function(b["maps"], b["masks"])
        return s, float(s.double().mean())
    kw = {"normalization": SYMMETRIC} if key == "rcap" else {}
    res = d.function(model, b["images"], b["targets"], b["maps"], **kw)
    value = {"rcap": lambda: res.mean(), "dauc": lambda: res.dauc, "iauc": lambda: res.iauc}
    return d.per_image(res), value[key]()


def _update(metric, model, b, idx=slice(None), **kw):
    metric.update(model, b["images"][idx], b["targets"][idx], b["maps"][idx], b["masks"][idx], **kw)


def test_every_metric_has_a_metric_class_with_its_direction():
    assert set(tm.METRIC_CLASSES) == set(METRICS) == set(names.METRICS)
    for key, cls in tm.METRIC_CLASSES.items():
        assert issubclass(cls, Metric)
        assert cls.definition is METRICS[key]
        assert cls.higher_is_better is names.METRICS[key].higher_is_better
        assert cls.is_differentiable is False


@pytest.mark.parametrize("key", list(METRICS))
def test_metric_equals_the_functional_metric_on_the_batch(key, tiny_model, batch):
    metric = _make(key)
    _update(metric, tiny_model, batch)
    out = metric.compute()
    per_image, value = _functional(key, tiny_model, batch)
    assert set(out) == {"mean", "lo", "hi", "per_image"}
    assert out["per_image"].dtype == torch.float64 and out["per_image"].shape == (B,)
    torch.testing.assert_close(out["per_image"], per_image.double(), rtol=0, atol=1e-7)
    assert abs(float(out["mean"]) - value) < 1e-7
    ci = bootstrap_ci(np.sort(per_image.double().numpy()))
    assert (float(out["lo"]), float(out["hi"])) == pytest.approx((ci.lo, ci.hi), abs=1e-7)
    assert float(out["lo"]) <= float(out["mean"]) <= float(out["hi"])


@pytest.mark.parametrize("key", list(METRICS))
def test_batches_accumulate_to_the_one_batch_result(key, tiny_model, batch):
    """Scores of images cut into batches (any order) = one batch, to rounding."""
    whole, parts = _make(key), _make(key)
    _update(whole, tiny_model, batch)
    for idx in ([4, 5], [0], [1, 2, 3]):
        _update(parts, tiny_model, batch, idx)
    a, b = whole.compute(), parts.compute()
    order = [4, 5, 0, 1, 2, 3]
    torch.testing.assert_close(b["per_image"], a["per_image"][order], rtol=0, atol=1e-6)
    for field in ("mean", "lo", "hi"):
        assert abs(float(a[field]) - float(b[field])) < 1e-7


def test_ids_return_the_images_in_id_order_once_each(tiny_model, batch):
    metric = tm.RCAP(SYMMETRIC)
    _update(metric, tiny_model, batch, [3, 4, 5], ids=[13, 14, 15])
    _update(metric, tiny_model, batch, [0, 1, 2, 3], ids=[10, 11, 12, 13])  # 13 again
    out = metric.compute()
    assert out["ids"].tolist() == [10, 11, 12, 13, 14, 15]
    ref = tm.RCAP(SYMMETRIC)
    _update(ref, tiny_model, batch)
    torch.testing.assert_close(out["per_image"], ref.compute()["per_image"], rtol=0, atol=1e-6)


def test_ids_in_some_updates_only_raise(batch):
    metric = tm.MAE()
    _update(metric, None, batch, [0, 1], ids=[0, 1])
    _update(metric, None, batch, [2, 3])
    with pytest.raises(AbsgradError, match="ids were given for some images"):
        metric.compute()


@pytest.mark.parametrize(
    "ids", [[0, 1], [0.5, 1, 2], torch.tensor([True, False, True]), [-1e17, 0, 1]]
)
def test_bad_ids_raise(batch, ids):
    with pytest.raises(AbsgradError, match="ids must be"):
        _update(tm.MAE(), None, batch, [0, 1, 2], ids=ids)


def test_compute_is_cached_and_follows_updates(tiny_model, batch):
    metric = tm.IAUC()
    _update(metric, tiny_model, batch, [0, 1, 2])
    first = metric.compute()
    again = metric.compute()
    for k in first:
        assert torch.equal(first[k], again[k])
    _update(metric, tiny_model, batch, [3, 4, 5])
    grown = metric.compute()
    assert grown["per_image"].shape == (B,)
    torch.testing.assert_close(grown["per_image"][:3], first["per_image"], rtol=0, atol=0)


def test_reset_forgets_the_images(tiny_model, batch):
    metric = tm.DAUC()
    _update(metric, tiny_model, batch, [0, 1, 2])
    metric.compute()
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        with pytest.raises(AbsgradError, match="no scores: call update"):
            metric.compute()
    _update(metric, tiny_model, batch, [3, 4, 5])
    fresh = tm.DAUC()
    _update(fresh, tiny_model, batch, [3, 4, 5])
    for k, v in fresh.compute().items():
        assert torch.equal(metric.compute()[k], v)


def test_forward_gives_the_batch_and_accumulates(tiny_model, batch):
    metric = tm.LcDice()
    b1 = metric(None, batch["images"][:2], None, batch["maps"][:2], batch["masks"][:2])
    metric(None, batch["images"][2:], None, batch["maps"][2:], batch["masks"][2:])
    ref = METRICS["lc_dice"].function(batch["maps"], batch["masks"]).double()
    torch.testing.assert_close(b1["per_image"], ref[:2], rtol=0, atol=1e-7)
    torch.testing.assert_close(metric.compute()["per_image"], ref, rtol=0, atol=1e-7)


def test_a_collection_keeps_metrics_with_different_settings_apart(batch):
    """Two pointing games whose first scores coincide are not merged into one compute group."""
    maps = torch.zeros(B, H, H)
    maps[:, 4:8, 4:8] = 1.0  # a 16-pixel block: top 30% and top 5% point at its centre
    masks = torch.zeros(B, H, H, dtype=torch.bool)
    masks[:, 5:7, 5:7] = True
    coll = MetricCollection({"p30": tm.PointingGame(), "p05": tm.PointingGame(top=0.05)})
    coll.update(None, None, None, maps, masks)
    assert coll.compute()["p30_mean"] == coll.compute()["p05_mean"] == 1.0
    other = batch["maps"]
    coll.update(None, None, None, other, batch["masks"])
    for name, top in (("p30", 0.3), ("p05", 0.05)):
        single = tm.PointingGame(top=top)
        single.update(None, None, None, maps, masks)
        single.update(None, None, None, other, batch["masks"])
        assert torch.equal(coll[name].compute()["per_image"], single.compute()["per_image"])


def test_a_collection_updates_every_metric_with_one_call(tiny_model, batch):
    coll = MetricCollection({k: _make(k) for k in METRICS})
    coll.update(tiny_model, batch["images"], batch["targets"], batch["maps"], batch["masks"])
    out = coll.compute()
    for key in METRICS:
        per_image, _ = _functional(key, tiny_model, batch)
        torch.testing.assert_close(out[f"{key}_per_image"], per_image.double(), atol=1e-7, rtol=0)


def test_normalization_comes_from_a_case_or_the_models_preprocessing(tiny_model, batch):
    from absgrad.cases import CASES, get_case
    from absgrad.models import Preprocess

    case = get_case("synthetic", n=4)
    assert tm.resolve_normalization(case) == tm.resolve_normalization(SYMMETRIC)
    defaults = Preprocess(
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
    )  # model_defaults(...).preprocess
    timm_like = {"mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 0.9}
    results = []
    for source in (case, defaults, timm_like, SYMMETRIC):
        metric = tm.RCAP(source)
        _update(metric, tiny_model, batch)
        results.append(metric.compute()["per_image"])
    for r in results[1:]:
        assert torch.equal(r, results[0])
    imagenet = tm.RCAP(CASES["imagenet-s"])  # ImageNet statistics: another black, another RCAP
    _update(imagenet, tiny_model, batch)
    assert not torch.allclose(imagenet.compute()["per_image"], results[0])


def test_rcap_has_no_default_normalization():
    with pytest.raises(TypeError, match="normalization"):
        tm.RCAP()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "bad", [None, "imagenet", ((0.5, 0.5), (0.5, 0.5, 0.5, 0.5)), ((0.5,), (0.0,)), 3]
)
def test_bad_normalization_raises(bad):
    with pytest.raises(AbsgradError, match="normalization"):
        tm.RCAP(bad)


def test_normalization_is_checked_against_the_images(tiny_model, batch):
    metric = tm.IAUC(((0.5, 0.5), (0.5, 0.5)))  # 2 channels, images have 3
    with pytest.raises(ValueError, match="3 channels"):
        _update(metric, tiny_model, batch)


@pytest.mark.parametrize("key", list(METRICS))
def test_maps_that_do_not_fit_the_images_raise(key, tiny_model, batch):
    metric = _make(key)
    with pytest.raises(AbsgradError, match="maps"):
        metric.update(
            tiny_model, batch["images"], batch["targets"], batch["maps"][:, :8], batch["masks"]
        )
    assert metric.update_count == 1  # torchmetrics counted the call; nothing was stored
    with pytest.raises(AbsgradError, match="no scores"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.compute()


def test_mask_metrics_need_masks_and_perturbing_metrics_a_model(batch):
    with pytest.raises(AbsgradError, match="masks"):
        tm.MAE().update(None, batch["images"], None, batch["maps"])
    with pytest.raises(AbsgradError, match="model"):
        tm.DAUC().update(None, batch["images"], None, batch["maps"])


def test_rcap_rejects_negative_maps(tiny_model, batch):
    with pytest.raises(ValueError, match="negative"):
        tm.RCAP(SYMMETRIC).update(tiny_model, batch["images"], None, batch["maps"] - 0.5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tm.RCAP(SYMMETRIC, lower_bound=1.2),
        lambda: tm.DAUC(steps=0),
        lambda: tm.IAUC(batch_size=0),
        lambda: tm.PointingGame(top=0),
        lambda: tm.MAE(level=1.5),
        lambda: tm.MAE(n_resamples=0),
    ],
)
def test_bad_settings_raise_at_construction(make):
    with pytest.raises(ValueError):
        make()


def test_the_model_is_left_as_it_was(tiny_model, batch):
    tiny_model.train()
    metric = tm.RCAP(SYMMETRIC)
    _update(metric, tiny_model, batch)
    assert tiny_model.training
    assert all(p.grad is None for p in tiny_model.parameters())


def test_a_missing_torchmetrics_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # "import torchmetrics" fails
    monkeypatch.delitem(sys.modules, "absgrad.metrics.torchmetrics")
    with pytest.raises(ImportError, match=r"pip install 'absgrad\[torchmetrics\]'"):
        importlib.import_module("absgrad.metrics.torchmetrics")
