"""Every metric as an object called like a Quantus metric.

``metric(model=..., x_batch=..., y_batch=..., a_batch=..., s_batch=...)`` with numpy arrays or
torch tensors returns a list of per-image scores (``metric.evaluation_scores``; the full result
object is kept in ``metric.last_result``). Attributions ``a_batch`` may be ``(B, H, W)``,
``(B, 1, H, W)`` or ``(B, C, H, W)``; channels are reduced like the map step (sum of ``|A|``) and,
with ``normalise=True`` (default), each map is min-max scaled to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from absgrad.metrics.forward import DEFAULT_BATCH_SIZE
from absgrad.metrics.grid import rcap_percentiles
from absgrad.metrics.registry import METRICS, MetricDef
from absgrad.metrics.sanity import sanity_check
from absgrad.utils.devices import model_device
from absgrad.utils.maps import minmax, to_map
from absgrad.utils.normalization import IMAGENET, Normalization

# Quantus call arguments that have no effect here (we always softmax, and batch ourselves).
_IGNORED = {"softmax", "model_predict_kwargs", "custom_batch"}


def _to_tensor(value: object, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got an object array")
        return torch.from_numpy(np.ascontiguousarray(arr))
    raise TypeError(f"{name} must be a numpy array or a torch.Tensor, got {type(value).__name__}")


def _channel_first(x: Tensor, channel_first: bool | None) -> Tensor:
    """``(B, H, W, C)`` -> ``(B, C, H, W)`` when ``channel_first`` is False (or inferred so)."""
    if x.dim() != 4:
        return x
    if channel_first is None:
        channel_first = not (x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4))
    return x if channel_first else x.permute(0, 3, 1, 2).contiguous()


class _Metric:
    """Shared Quantus-style call handling; ``metric`` is the declaration the object reads."""

    metric: MetricDef | None = None
    needs_model = True

    @property
    def needs_masks(self) -> bool:
        """The metric compares maps with ground-truth masks ``s_batch``."""
        return self.metric is not None and self.metric.needs_mask

    @property
    def higher_is_better(self) -> bool | None:
        """Score direction (``None``: the object returns no single score per image)."""
        return None if self.metric is None else self.metric.higher_is_better

    def __init__(self, *, normalise: bool = True, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.normalise = normalise
        self.batch_size = batch_size
        self.evaluation_scores: list[Any] = []
        self.last_result: Any = None

    def _maps(self, a: Tensor) -> Tensor:
        a = a.float()
        if a.dim() == 4:
            if self.normalise:
                return to_map(a)
            return a.abs().sum(dim=1)
        if a.dim() != 3:
            raise ValueError(
                f"a_batch must be (B, H, W), (B, 1, H, W) or (B, C, H, W), got {tuple(a.shape)}"
            )
        if not torch.isfinite(a).all():
            raise ValueError("a_batch contains NaN or infinite values")
        return minmax(a) if self.normalise else a

    def __call__(
        self,
        model: nn.Module | None = None,
        x_batch: object = None,
        y_batch: object = None,
        a_batch: object = None,
        s_batch: object = None,
        channel_first: bool | None = None,
        explain_func: Callable[..., Any] | None = None,
        explain_func_kwargs: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        unknown = set(kwargs) - _IGNORED
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
        if x_batch is None:
            raise ValueError("x_batch is required")
        if self.needs_model and model is None:
            raise ValueError("model is required")
        dev = torch.device(device) if device is not None else model_device(model)
        x = _channel_first(_to_tensor(x_batch, "x_batch"), channel_first).float().to(dev)
        y = None if y_batch is None else _to_tensor(y_batch, "y_batch").reshape(-1).long().to(dev)
        if a_batch is None:
            if explain_func is None:
                raise ValueError("give a_batch, or explain_func to compute it")
            a_batch = explain_func(
                model=model, inputs=x_batch, targets=y_batch, **(explain_func_kwargs or {})
            )
        a = _to_tensor(a_batch, "a_batch")
        if a.dim() == 4 and a.shape[1] not in (1, x.shape[1]):
            a = _channel_first(a, channel_first)
        maps = self._maps(a).to(dev)
        s = None
        if self.needs_masks:
            if s_batch is None:
                raise ValueError(f"{type(self).__name__} needs the ground-truth masks s_batch")
            s = _to_tensor(s_batch, "s_batch").to(dev)
        batch = self.batch_size if batch_size is None else batch_size
        scores = self.evaluate(model, x, y, maps, s, batch)
        self.evaluation_scores = scores
        return scores

    def evaluate(
        self,
        model: nn.Module | None,
        x: Tensor,
        y: Tensor | None,
        maps: Tensor,
        masks: Tensor | None,
        batch_size: int,
    ) -> list[Any]:
        raise NotImplementedError


class _Perturbing(_Metric):
    """A metric that feeds perturbed images to the model: its function, called with
    :meth:`options`, gives the result its declaration turns into per-image scores."""

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the metric's function (besides ``batch_size``)."""
        raise NotImplementedError

    def evaluate(self, model, x, y, maps, masks, batch_size):  # noqa: D102
        res = self.metric.function(model, x, y, maps, batch_size=batch_size, **self.options())
        self.last_result = res
        return self.metric.per_image(res).tolist()


class RCAP(_Perturbing):
    """RCAP (higher is better); see :func:`absgrad.metrics.rcap`."""

    metric = METRICS["rcap"]

    def __init__(
        self,
        lower_bound: float = 0.5,
        interval: float = 0.1,
        normalization: Normalization = IMAGENET,
        *,
        normalise: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__(normalise=normalise, batch_size=batch_size)
        rcap_percentiles(lower_bound, interval)  # fail early on a bad setting
        self.lower_bound, self.interval, self.normalization = lower_bound, interval, normalization

    def options(self) -> dict[str, Any]:  # noqa: D102
        return {
            "lower_bound": self.lower_bound,
            "interval": self.interval,
            "normalization": self.normalization,
        }


class _AUC(_Perturbing):
    metric = METRICS["dauc"]

    def __init__(
        self,
        steps: int = 10,
        normalization: Normalization = IMAGENET,
        *,
        normalise: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__(normalise=normalise, batch_size=batch_size)
        self.steps, self.normalization = steps, normalization

    def options(self) -> dict[str, Any]:  # noqa: D102
        return {"steps": self.steps, "normalization": self.normalization}


class DAUC(_AUC):
    """Area under each image's deletion curve (lower is better); see
    :func:`absgrad.metrics.deletion_insertion`. The dataset DAUC is the mean of these scores."""

    metric = METRICS["dauc"]


class IAUC(_AUC):
    """Area under each image's insertion curve (higher is better)."""

    metric = METRICS["iauc"]


class _Segmentation(_Metric):
    metric = METRICS["mae"]
    needs_model = False

    def evaluate(self, model, x, y, maps, masks, batch_size):  # noqa: D102
        assert masks is not None
        if masks.dim() == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        scores = self.metric.function(maps, masks)
        self.last_result = scores
        return self.metric.per_image(scores).tolist()


class LcDice(_Segmentation):
    """Log-Cosh Dice loss against ``s_batch`` (lower is better)."""

    metric = METRICS["lc_dice"]


class MAE(_Segmentation):
    """Mean absolute error against ``s_batch`` (lower is better)."""

    metric = METRICS["mae"]


class MAESqrtPaper(_Segmentation):
    """The paper's printed "MAE", ``sqrt(mean |M - S|)``, against ``s_batch``."""

    metric = METRICS["mae_sqrt"]


class PointingGame(_Segmentation):
    """1.0 where the centroid of the map's top 30% lies inside ``s_batch``, else 0.0."""

    metric = METRICS["pointing_game"]


class ModelParameterRandomisation(_Metric):
    """Cascading randomisation sanity check; needs ``explain_func``. Returns, like Quantus,
    a dict ``{layer name: [Spearman correlation per image]}`` in randomisation order."""

    def __init__(self, layers: Sequence[str] | None = None, seed: int = 0) -> None:
        super().__init__(normalise=True)
        self.layers, self.seed = layers, seed

    def __call__(  # type: ignore[override]
        self,
        model: nn.Module | None = None,
        x_batch: object = None,
        y_batch: object = None,
        a_batch: object = None,
        s_batch: object = None,
        channel_first: bool | None = None,
        explain_func: Callable[..., Any] | None = None,
        explain_func_kwargs: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> dict[str, list[float]]:
        unknown = set(kwargs) - _IGNORED - {"batch_size"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
        if not isinstance(model, nn.Module):
            raise TypeError("model must be a torch.nn.Module")
        if explain_func is None:
            raise ValueError("ModelParameterRandomisation needs explain_func")
        dev = torch.device(device) if device is not None else model_device(model)
        x = _channel_first(_to_tensor(x_batch, "x_batch"), channel_first).float().to(dev)
        y = _to_tensor(y_batch, "y_batch").reshape(-1).long().to(dev)
        as_numpy = isinstance(x_batch, np.ndarray)
        kw = explain_func_kwargs or {}

        def explain(m: nn.Module, inputs: Tensor, target: Tensor) -> Tensor:
            xi = inputs.cpu().numpy() if as_numpy else inputs
            ti = target.cpu().numpy() if as_numpy else target
            a = _to_tensor(explain_func(model=m, inputs=xi, targets=ti, **kw), "explanation")
            return self._maps(a).to(dev)

        res = sanity_check(model, x, y, explain, layers=self.layers, seed=self.seed)
        self.last_result = res
        out = {name: row.tolist() for name, row in zip(res.layers, res.correlation, strict=True)}
        self.evaluation_scores = out  # type: ignore[assignment]
        return out


__all__ = [
    "RCAP",
    "DAUC",
    "IAUC",
    "LcDice",
    "MAE",
    "MAESqrtPaper",
    "PointingGame",
    "ModelParameterRandomisation",
]
