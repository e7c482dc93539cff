"""Every absgrad metric as a ``torchmetrics.Metric``: scores accumulate over a validation loop
and gather across processes (DDP).

Needs the ``torchmetrics`` package (``pip install 'absgrad[torchmetrics]'``)::

    from absgrad.metrics.torchmetrics import RCAP

    rcap = RCAP(normalization=case.normalization)  # or normalization=case
    for images, targets in loader:
        maps = absgrad.explain(model, images, targets, "gag")
        rcap.update(model, images, targets, maps)
    rcap.compute()  # {"mean", "lo", "hi", "per_image"}

Each class scores a batch with its functional metric (:data:`absgrad.metrics.METRICS`) and keeps
the per-image scores in a list state reduced with ``cat``, so under ``torch.distributed``
:meth:`compute` sees every rank's images: the same scores as one process on the same images.
The mean and its bootstrap interval (:func:`absgrad.report.stats.bootstrap_ci`) are taken over
the scores sorted by value, so they do not depend on the order the images arrived in, nor on how
they were split over ranks and batches. ``update(..., ids=...)`` names the images (dataset
indices): :meth:`compute` then returns the scores in id order and counts a repeated id once
(``DistributedSampler`` repeats images to give every rank the same number).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError, InputError
from absgrad.metrics.forward import DEFAULT_BATCH_SIZE
from absgrad.metrics.grid import rcap_percentiles
from absgrad.metrics.inputs import prepare
from absgrad.metrics.registry import METRICS, MetricDef
from absgrad.metrics.segmentation import check_top
from absgrad.report.stats import LEVEL, N_RESAMPLES, Interval, bootstrap_ci
from absgrad.utils.normalization import Normalization, check_normalization
from absgrad.utils.validation import check_positive_int

INSTALL_HINT = "pip install 'absgrad[torchmetrics]'"

try:
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat
except ImportError as err:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        f"absgrad.metrics.torchmetrics needs the torchmetrics package ({err}); "
        f"install the extra with: {INSTALL_HINT}",
        name="torchmetrics",
    ) from None

#: ``ids`` are stored as float64 states: exact for integers below 2**53
_MAX_ID = 2**53


def resolve_normalization(source: object) -> Normalization:
    """``(mean, std)`` from a pair, an absgrad case (its ``normalization``), or anything with
    ``mean`` and ``std`` (as attributes or keys): a model's preprocessing
    (``absgrad.models.model_defaults(spec).preprocess``), timm's pretrained config or data
    config, torchvision's weights ``transforms()``."""
    if hasattr(source, "normalization"):
        source = source.normalization
    elif isinstance(source, Mapping) and "mean" in source and "std" in source:
        source = (source["mean"], source["std"])
    elif hasattr(source, "mean") and hasattr(source, "std") and not callable(source.mean):
        source = (source.mean, source.std)
    try:
        mean, std = source  # type: ignore[misc]
        channels = max(len(mean), len(std))
    except (TypeError, ValueError):
        raise AbsgradError(
            "normalization must be (mean, std), an absgrad case, or an object with mean and std "
            f"(model_defaults(...).preprocess, timm's pretrained config, torchvision's transforms()); got "
            f"{source!r}"
        ) from None
    try:
        check_normalization((mean, std), channels)
    except (TypeError, ValueError) as e:
        raise AbsgradError(str(e)) from None
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _check_ids(ids: object, batch: int) -> Tensor:
    """``(B,)`` float64 image ids (NaN when ``ids`` is None)."""
    if ids is None:
        return torch.full((batch,), float("nan"), dtype=torch.float64)
    t = ids if isinstance(ids, Tensor) else torch.as_tensor(ids)
    if t.dtype == torch.bool or t.is_complex() or t.shape != (batch,):
        raise InputError(
            f"ids must be {batch} integers, one per image, got {tuple(t.shape)} {t.dtype}"
        )
    t = t.detach().cpu().to(torch.float64)
    if not torch.isfinite(t).all() or (t != t.round()).any() or (t.abs() >= _MAX_ID).any():
        raise InputError("ids must be integers (dataset indices) below 2**53")
    return t


class ScoreMetric(Metric):
    """Base class: per-image scores of one absgrad metric, and their mean with a bootstrap
    interval.

    ``update(model, images, targets, maps, masks=None, *, ids=None)`` scores one batch:
    ``images (B, C, H, W)`` normalised model inputs, ``targets`` a class per image (``None``:
    the top-1 class), ``maps (B, H, W)`` (or ``(B, 1, H, W)``), ``masks (B, H, W)`` binary
    (the metrics against a ground-truth mask), ``ids`` ``B`` integers naming the images.

    :meth:`compute` returns float64 tensors ``{"mean", "lo", "hi", "per_image" (N,)}`` (and
    ``"ids" (N,)`` when ids were given): the mean score over the ``N`` images and its
    percentile bootstrap interval (``n_resamples``, ``level``, ``seed``).
    """

    #: the metric's declaration in :data:`absgrad.metrics.METRICS`
    definition: ClassVar[MetricDef]
    is_differentiable: ClassVar[bool] = False
    full_state_update: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "definition" in cls.__dict__:
            cls.higher_is_better = cls.definition.higher_is_better

    def __init__(
        self,
        *,
        n_resamples: int = N_RESAMPLES,
        level: float = LEVEL,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        bootstrap_ci([0.0], n_resamples=n_resamples, level=level, seed=seed)  # check early
        self.n_resamples, self.level, self.seed = n_resamples, level, seed
        # State names carry the metric and its settings, so that a MetricCollection never puts
        # two different metrics (whose first scores may coincide) in one compute group.
        tag = hashlib.sha1(repr(self.options()).encode()).hexdigest()[:8]
        self._score_state = f"{self.definition.key}_{tag}_scores"
        self._id_state = f"{self.definition.key}_{tag}_ids"
        self.add_state(self._score_state, default=[], dist_reduce_fx="cat")
        self.add_state(self._id_state, default=[], dist_reduce_fx="cat")
        # float64 states: exact ids, and what torchmetrics sends for a rank without images
        self.set_dtype(torch.float64)

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the functional metric (besides ``batch_size``)."""
        return {}

    def scores(
        self,
        model: nn.Module | None,
        images: Tensor | None,
        targets: object,
        maps: Tensor,
        masks: Tensor | None,
    ) -> Tensor:
        """``(B,)`` scores of one batch (what :meth:`update` stores)."""
        raise NotImplementedError

    def update(
        self,
        model: nn.Module | None,
        images: Tensor | None,
        targets: int | Sequence[int] | Tensor | None,
        maps: Tensor,
        masks: Tensor | None = None,
        *,
        ids: Sequence[int] | Tensor | None = None,
    ) -> None:
        """Score one batch of maps and keep the per-image scores (see the class docstring)."""
        s = self.scores(model, images, targets, maps, masks).detach()
        i = _check_ids(ids, s.shape[0])
        getattr(self, self._score_state).append(s.to(device=self.device, dtype=torch.float64))
        getattr(self, self._id_state).append(i.to(self.device))

    def compute(self) -> dict[str, Tensor]:
        """Mean, bootstrap interval and per-image scores of every image seen (on every rank)."""
        scores = _cat(getattr(self, self._score_state))
        ids = _cat(getattr(self, self._id_state))
        if scores.numel() == 0:
            raise AbsgradError(
                f"{type(self).__name__} has no scores: call update() before compute()"
            )
        named = ~torch.isnan(ids)
        out: dict[str, Tensor] = {}
        if bool(named.any()):
            if not bool(named.all()):
                raise AbsgradError(
                    f"{type(self).__name__}: ids were given for some images and not others; "
                    "give ids in every update() call (on every rank) or in none"
                )
            ids, order = torch.sort(ids, stable=True)
            scores = scores[order]
            first = torch.ones_like(ids, dtype=torch.bool)
            first[1:] = ids[1:] != ids[:-1]
            ids, scores = ids[first], scores[first]
            out["ids"] = ids.long()
        ci = self.bootstrap(scores)
        value = torch.tensor([ci.value, ci.lo, ci.hi], dtype=torch.float64, device=self.device)
        out.update(mean=value[0], lo=value[1], hi=value[2], per_image=scores)
        return out

    def bootstrap(self, scores: Tensor) -> Interval:
        """The mean of ``scores (N,)`` and its bootstrap interval, over the sorted scores."""
        values = np.sort(scores.detach().cpu().numpy().astype(np.float64))
        ci = bootstrap_ci(values, n_resamples=self.n_resamples, level=self.level, seed=self.seed)
        assert isinstance(ci, Interval)
        return ci


def _cat(state: list[Tensor] | Tensor) -> Tensor:
    if isinstance(state, Tensor):
        return state.reshape(-1)
    if not state:
        return torch.zeros(0, dtype=torch.float64)
    return dim_zero_cat(state).reshape(-1)


class _Perturbing(ScoreMetric):
    """A metric that scores perturbed images with the model (in eval mode, without autograd)."""

    def __init__(self, *, batch_size: int = DEFAULT_BATCH_SIZE, **kwargs: Any) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        super().__init__(**kwargs)

    def scores(self, model, images, targets, maps, masks):  # noqa: D102
        if model is None:
            raise InputError(f"{type(self).__name__} needs the model")
        d = self.definition
        res = d.function(model, images, targets, maps, batch_size=self.batch_size, **self.options())
        return d.per_image(res)


class RCAP(_Perturbing):
    """RCAP per image (higher is better); see :func:`absgrad.metrics.rcap`.

    ``normalization``: what produced the images, which sets RCAP's black; ``(mean, std)``, an
    absgrad case, or the model's preprocessing (see :func:`resolve_normalization`). Required:
    there is no default. Maps must be non-negative.
    """

    definition = METRICS["rcap"]

    def __init__(
        self,
        normalization: object,
        *,
        lower_bound: float = 0.5,
        interval: float = 0.1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        rcap_percentiles(lower_bound, interval)  # fail early on a bad setting
        self.normalization = resolve_normalization(normalization)
        self.lower_bound, self.interval = lower_bound, interval
        super().__init__(batch_size=batch_size, **kwargs)

    def options(self) -> dict[str, Any]:  # noqa: D102
        return {
            "lower_bound": self.lower_bound,
            "interval": self.interval,
            "normalization": self.normalization,
        }


#: deletion/insertion do not read the normalisation (deletion writes 0 in normalised space,
#: insertion blurs the normalised image); a 1-value pair passes the check for any channels
_UNCHECKED: Normalization = ((0.0,), (1.0,))


class _Curve(_Perturbing):
    def __init__(
        self,
        normalization: object = None,
        *,
        steps: int = 10,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        self.steps = check_positive_int(steps, "steps")
        self.normalization = (
            _UNCHECKED if normalization is None else resolve_normalization(normalization)
        )
        super().__init__(batch_size=batch_size, **kwargs)

    def options(self) -> dict[str, Any]:  # noqa: D102
        return {"steps": self.steps, "normalization": self.normalization}


class DAUC(_Curve):
    """Area under each image's deletion curve (lower is better); see
    :func:`absgrad.metrics.deletion_insertion`. The mean over images is the area of the mean
    curve, the paper's dataset DAUC. ``normalization`` (optional) is only checked: the curves
    do not depend on it."""

    definition = METRICS["dauc"]


class IAUC(_Curve):
    """Area under each image's insertion curve (higher is better); the mean over images is the
    area of the mean curve. ``normalization`` (optional) is only checked."""

    definition = METRICS["iauc"]


class _Segmentation(ScoreMetric):
    """A metric of the maps against binary ground-truth masks (the model is not called)."""

    def scores(self, model, images, targets, maps, masks):  # noqa: D102
        if masks is None:
            raise InputError(f"{type(self).__name__} needs the ground-truth masks (masks=...)")
        if images is not None:
            prepare(images, maps)  # the maps must belong to these images
        return self.definition.per_image(self.definition.function(maps, masks, **self.options()))


class LcDice(_Segmentation):
    """Log-Cosh Dice loss against the masks (lower is better); maps in [0, 1]."""

    definition = METRICS["lc_dice"]


class MAE(_Segmentation):
    """Mean absolute error against the masks (lower is better); maps in [0, 1]."""

    definition = METRICS["mae"]


class MAESqrtPaper(_Segmentation):
    """``sqrt(mean |M - S|)``, what the paper prints as "MAE" (lower is better)."""

    definition = METRICS["mae_sqrt"]


class PointingGame(_Segmentation):
    """1.0 where the centroid of the map's top ``top`` fraction lies in the mask, else 0.0
    (higher is better)."""

    definition = METRICS["pointing_game"]

    def __init__(self, *, top: float = 0.3, **kwargs: Any) -> None:
        check_top(top)
        self.top = top
        super().__init__(**kwargs)

    def options(self) -> dict[str, Any]:  # noqa: D102
        return {"top": self.top}


#: metric key -> its Metric class
METRIC_CLASSES: dict[str, type[ScoreMetric]] = {
    c.definition.key: c for c in (LcDice, MAE, RCAP, DAUC, IAUC, MAESqrtPaper, PointingGame)
}

__all__ = [
    "INSTALL_HINT",
    "METRIC_CLASSES",
    "ScoreMetric",
    "resolve_normalization",
    "RCAP",
    "DAUC",
    "IAUC",
    "LcDice",
    "MAE",
    "MAESqrtPaper",
    "PointingGame",
]
