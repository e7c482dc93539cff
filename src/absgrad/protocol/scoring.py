"""The protocol's metrics (declared in :data:`absgrad.metrics.METRICS`) and scoring one batch
of maps with all of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError
from absgrad.metrics.registry import (
    METRICS,
    PERTURBATIONS,
    MetricDef,
    get_metric,
    mask_free_metrics,
)
from absgrad.names import PAPER_METRICS

__all__ = [
    "METRICS",
    "MetricDef",
    "PAPER_METRICS",
    "EvalSettings",
    "default_metrics",
    "check_metrics",
    "score_maps",
    "score_many",
    "clean_and_blurred_probs",
]


def default_metrics(has_masks: bool) -> tuple[str, ...]:
    """The case's metrics: the paper's columns, plus the mask metrics when masks exist."""
    return tuple(METRICS) if has_masks else mask_free_metrics()


def check_metrics(names: Sequence[str], has_masks: bool, case: str) -> tuple[str, ...]:
    """Validate metric names for a case; errors name the unknown or inapplicable metric."""
    out = []
    for name in names:
        metric = get_metric(name)
        if metric.needs_mask and not has_masks:
            raise AbsgradError(
                f"metric {name!r} needs ground-truth masks and case {case!r} has none"
            )
        out.append(metric.key)
    return tuple(sorted(set(out), key=list(METRICS).index))


@dataclass(frozen=True)
class EvalSettings:
    """Metric parameters and the forward batch size."""

    normalization: tuple[tuple[float, ...], tuple[float, ...]]
    lower_bound: float = 0.5
    interval: float = 0.1
    auc_steps: int = 10
    batch_size: int = 16


def _floats(t: Tensor) -> list:
    return t.detach().cpu().double().tolist()  # MPS has no float64


def score_maps(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    maps: Tensor,
    metrics: Sequence[str],
    settings: EvalSettings,
    *,
    masks: Tensor | None = None,
    clean_probs: Tensor | None = None,
    blurred_probs: Tensor | None = None,
) -> dict[str, Any]:
    """Per-image scores of ``maps (B, H, W)``, as JSON-ready lists.

    Keys: each asked metric ``(B,)``; with RCAP also ``rcap_hit``/``rcap_prob``/``rcap_valid``
    ``(B, P)``; with DAUC or IAUC the ``deletion``/``insertion`` curves ``(B, steps)``.
    """
    return score_many(
        model,
        x,
        target,
        {"": maps},
        metrics,
        settings,
        masks=masks,
        clean_probs=clean_probs,
        blurred_probs=blurred_probs,
    )[""]


def score_many(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    maps: Mapping[str, Tensor],
    metrics: Sequence[str],
    settings: EvalSettings,
    *,
    masks: Tensor | None = None,
    clean_probs: Tensor | None = None,
    blurred_probs: Tensor | None = None,
    blurred_inputs: Tensor | None = None,
    cache: Any = None,
) -> dict[str, dict[str, Any]]:
    """:func:`score_maps` for several maps of the same images ``{label: (B, H, W)}``.

    Every perturbed image of every map goes through one :class:`ForwardQueue`, so the model
    sees full chunks of ``settings.batch_size`` across maps; each map is sorted once for RCAP
    and the curves, and the insertion start image is blurred once (or taken from
    ``blurred_inputs``, :func:`absgrad.metrics.blurred` ``(x)`` computed by the caller).
    Each distinct perturbed image is scored once (:mod:`absgrad.metrics.dedupe`; ``cache``: a
    :class:`absgrad.metrics.dedupe.ProbCache` shared with other calls on the same images).
    """
    from absgrad.metrics import blurred
    from absgrad.metrics.dedupe import DedupQueue
    from absgrad.metrics.grid import rcap_percentiles
    from absgrad.metrics.inputs import check_probs, prepare
    from absgrad.metrics.perturbation import PerturbContext
    from absgrad.metrics.thresholds import sorted_values
    from absgrad.utils.model_state import eval_mode
    from absgrad.utils.normalization import check_normalization

    wanted = [get_metric(name) for name in metrics]
    perturbations = [p for p in PERTURBATIONS.values() if any(d.perturbs == p.key for d in wanted)]
    b, c = x.shape[0], x.shape[1]
    check_normalization(settings.normalization, c)
    percentiles = rcap_percentiles(settings.lower_bound, settings.interval)
    if clean_probs is not None:
        clean_probs = check_probs(clean_probs, b, "clean_probs", x.device)
    if blurred_probs is not None:
        blurred_probs = check_probs(blurred_probs, b, "blurred_probs", x.device)
    base = blurred_inputs
    if base is None and any(p.key == "delete_insert" for p in perturbations):
        base = blurred(x)
    context = PerturbContext(
        normalization=settings.normalization,
        percentiles=percentiles,
        steps=settings.auc_steps,
        base=base,
        clean_probs=clean_probs,
        blurred_probs=blurred_probs,
    )
    nonnegative = any(p.nonnegative_maps for p in perturbations)
    with eval_mode(model), torch.inference_mode():
        queue = DedupQueue(
            model, settings.batch_size, x, target, cache=cache,
            normalization=settings.normalization, clean_probs=clean_probs,
            blurred_probs=blurred_probs,
        )  # fmt: skip
        pending: dict[str, list[tuple[str, Any, slice]]] = {}
        for label, raw in maps.items():
            name = f"map {label!r}" if label else "maps"
            xi, m = prepare(x, raw, name=name, nonnegative=nonnegative)
            ordered = sorted_values(m)
            work = []
            for p in perturbations:
                batch = p.build(xi, m, ordered, context)
                keys = queue.keys(m, ordered, context, batch)
                rows = queue.put(batch.images, target.repeat_interleave(batch.per_image), keys)
                work.append((p.key, batch, rows))
            pending[label] = work
        probs = queue.probs()
    out: dict[str, dict[str, Any]] = {}
    empty = empty_masks(masks) if masks is not None else None  # the same for every map
    for label, work in pending.items():
        scores: dict[str, Any] = {}
        for key, batch, rows in work:
            res = batch.result(probs[rows])
            for d in wanted:
                if d.perturbs == key:
                    scores[d.key] = _floats(d.per_image(res))
            scores.update({k: _json(v) for k, v in res.details().items()})
        scores.update(_mask_scores(maps[label], wanted, masks, empty))
        out[label] = scores
    return out


def _json(t: Tensor) -> list:
    """A tensor as nested lists: bools stay bools, numbers become floats."""
    return t.cpu().tolist() if t.dtype == torch.bool else _floats(t)


def _mask_scores(
    maps: Tensor, wanted: Sequence[MetricDef], masks: Tensor | None, empty: list[bool] | None
) -> dict:
    """The mask metrics per image; ``None`` for an image whose mask is ``empty`` (no ground
    truth: it is left out of these metrics, see :func:`empty_masks`)."""
    out = {}
    for d in wanted:
        if d.needs_mask:
            if masks is None or empty is None:
                raise AbsgradError(f"metric {d.key!r} needs masks and this batch has none")
            values = _floats(d.per_image(d.function(maps, masks.to(maps.device))).float())
            out[d.key] = [None if e else v for v, e in zip(values, empty, strict=True)]
    return out


def empty_masks(masks: Tensor) -> list[bool]:
    """Which masks ``(B, H, W)`` hold no foreground pixel (an image without ground truth)."""
    return (masks.flatten(1) != 0).sum(dim=1).eq(0).cpu().tolist()


def clean_and_blurred_probs(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    settings: EvalSettings,
    blurred_inputs: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Target probabilities on the clean and on the blurred images (deletion/insertion r = 0);
    ``blurred_inputs``: :func:`absgrad.metrics.blurred` ``(x)`` when already computed."""
    from absgrad import metrics as M

    base = M.blurred(x) if blurred_inputs is None else blurred_inputs
    with torch.inference_mode():
        clean = M.target_probs(model, x, target, batch_size=settings.batch_size)
        blur = M.target_probs(model, base, target, batch_size=settings.batch_size)
    return clean, blur
