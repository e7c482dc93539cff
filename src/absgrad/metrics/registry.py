"""One declaration per metric: name, direction, whether it needs a mask, what it perturbs and
how the model's probabilities (or the mask) become its score.

The functional API (:attr:`MetricDef.function`), the Quantus-style objects
(:mod:`absgrad.metrics.quantus_api`) and the evaluation protocol all read :data:`METRICS`;
the perturbations the metrics share are declared once in :data:`PERTURBATIONS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from absgrad import names
from absgrad.errors import AbsgradError
from absgrad.metrics.curves import AUCResult, curve_batch, deletion_insertion
from absgrad.metrics.perturbation import Perturbation
from absgrad.metrics.recover import RCAPResult, rcap, recovered_batch
from absgrad.metrics.segmentation import lc_dice, mae, mae_sqrt_paper, pointing_game
from absgrad.names import MetricInfo

PERTURBATIONS: dict[str, Perturbation] = {
    p.key: p
    for p in (
        Perturbation(
            "recover",
            "keep the pixels above each percentile of the map, black elsewhere",
            recovered_batch,
            nonnegative_maps=True,
        ),
        Perturbation(
            "delete_insert",
            "set the top fraction r of pixels to 0 (deletion) / restore them on the blurred "
            "image (insertion), r = 0, 1/steps, ...",
            curve_batch,
        ),
    )
}


@dataclass(frozen=True)
class MetricDef(MetricInfo):
    """A metric's declaration: its :class:`~absgrad.names.MetricInfo` (key, titles, direction,
    mask need) and how it is computed.

    ``perturbs``: the key of the :data:`PERTURBATIONS` entry whose probabilities it reads
    (``None``: it compares the map with the mask). ``function``: the functional API.
    ``per_image``: the ``(B,)`` scores from ``function``'s result (from the perturbation's
    result: the same type). ``scoring``: how the probabilities become the score, in words.
    """

    perturbs: str | None
    function: Callable[..., Any]
    per_image: Callable[[Any], Tensor]
    scoring: str


def _same(scores: Tensor) -> Tensor:
    return scores


def _rcap_score(res: RCAPResult) -> Tensor:
    return res.score


def _dauc(res: AUCResult) -> Tensor:
    return res.dauc_per_image


def _iauc(res: AUCResult) -> Tensor:
    return res.iauc_per_image


def _declare(
    key: str,
    *,
    perturbs: str | None,
    function: Callable[..., Any],
    per_image: Callable[[Any], Tensor],
    scoring: str,
) -> MetricDef:
    """A built-in metric; its titles, direction and mask need come from :data:`absgrad.names.METRICS`."""
    return MetricDef(
        **dataclasses.asdict(names.METRICS[key]),
        perturbs=perturbs,
        function=function,
        per_image=per_image,
        scoring=scoring,
    )


METRICS: dict[str, MetricDef] = {
    d.key: d
    for d in (
        _declare(
            "lc_dice",
            perturbs=None,
            function=lc_dice,
            per_image=_same,
            scoring="log cosh(1 - Dice(map, mask)), the Dice smoothed by 1",
        ),
        _declare(
            "mae",
            perturbs=None,
            function=mae,
            per_image=_same,
            scoring="mean |map - mask| over the pixels",
        ),
        _declare(
            "rcap",
            perturbs="recover",
            function=rcap,
            per_image=_rcap_score,
            scoring="mean over the valid percentiles of (share of map mass kept) x (target "
            "probability on the recovered image)",
        ),
        _declare(
            "dauc",
            perturbs="delete_insert",
            function=deletion_insertion,
            per_image=_dauc,
            scoring="trapezoid area under the target probability along the deletion curve",
        ),
        _declare(
            "iauc",
            perturbs="delete_insert",
            function=deletion_insertion,
            per_image=_iauc,
            scoring="trapezoid area under the target probability along the insertion curve",
        ),
        _declare(
            "mae_sqrt",
            perturbs=None,
            function=mae_sqrt_paper,
            per_image=_same,
            scoring="sqrt(mean |map - mask|), the figure the paper prints as MAE",
        ),
        _declare(
            "pointing_game",
            perturbs=None,
            function=pointing_game,
            per_image=_same,
            scoring="1 if the centroid of the map's top 30% lies inside the mask, else 0",
        ),
    )
}


def get_metric(name: str) -> MetricDef:
    """The declaration of metric ``name`` (case-insensitive, as method and map names are);
    unknown names raise, listing the metrics."""
    key = name.lower() if isinstance(name, str) else name
    if key not in METRICS:
        raise AbsgradError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[key]


mask_free_metrics = names.mask_free_metrics
