"""The protocol's metrics: names, directions, and scoring one batch of maps with all of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError


@dataclass(frozen=True)
class MetricDef:
    """A column of the tables: ``key`` in stored scores, display ``title``, direction."""

    key: str
    title: str
    higher_is_better: bool
    needs_mask: bool = False
    latex: str = ""

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


METRICS: dict[str, MetricDef] = {
    d.key: d
    for d in (
        MetricDef("lc_dice", "Lc-dce", False, True, r"$L_{lc\text{-}dce}$"),
        MetricDef("mae", "MAE", False, True, "MAE"),
        MetricDef("rcap", "RCAP", True, False, "RCAP"),
        MetricDef("dauc", "DAUC", False, False, "DAUC"),
        MetricDef("iauc", "IAUC", True, False, "IAUC"),
        MetricDef("mae_sqrt", "sqrtMAE", False, True, r"$\sqrt{\mathrm{MAE}}$"),
        MetricDef("pointing_game", "Pointing", True, True, "Pointing"),
    )
}
PAPER_METRICS = ("lc_dice", "mae", "rcap", "dauc", "iauc")


def default_metrics(has_masks: bool) -> tuple[str, ...]:
    """The case's metrics: the paper's columns, plus the mask metrics when masks exist."""
    if has_masks:
        return ("lc_dice", "mae", "rcap", "dauc", "iauc", "mae_sqrt", "pointing_game")
    return ("rcap", "dauc", "iauc")


def check_metrics(names: Sequence[str], has_masks: bool, case: str) -> tuple[str, ...]:
    """Validate metric names for a case; errors name the unknown or inapplicable metric."""
    out = []
    for name in names:
        if name not in METRICS:
            raise AbsgradError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        if METRICS[name].needs_mask and not has_masks:
            raise AbsgradError(f"metric {name!r} needs ground-truth masks and case {case!r} has none")
        out.append(name)
    return tuple(sorted(set(out), key=list(METRICS).index))


@dataclass(frozen=True)
class EvalSettings:
    """Metric parameters (SPEC §3) and the forward batch size."""

    normalization: tuple[tuple[float, ...], tuple[float, ...]]
    lower_bound: float = 0.5
    interval: float = 0.1
    auc_steps: int = 10
    batch_size: int = 16


def _floats(t: Tensor) -> list:
    return t.detach().double().cpu().tolist()


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
) -> dict[str, dict[str, Any]]:
    """:func:`score_maps` for several maps of the same images ``{label: (B, H, W)}``.

    Every perturbed image of every map goes through one :class:`ForwardQueue`, so the model
    sees full chunks of ``settings.batch_size`` across maps; each map is sorted once for RCAP
    and the curves, and the insertion start image is blurred once (or taken from
    ``blurred_inputs``, :func:`absgrad.metrics.blurred` ``(x)`` computed by the caller).
    """
    from absgrad import metrics as M
    from absgrad.metrics._perturb import (
        ForwardQueue,
        check_normalization,
        check_probs,
        eval_mode,
        prepare,
        sorted_values,
    )
    from absgrad.metrics.auc import curve_inputs
    from absgrad.metrics.rcap import rcap_inputs, rcap_percentiles

    want_rcap = "rcap" in metrics
    want_curves = "dauc" in metrics or "iauc" in metrics
    b, c = x.shape[0], x.shape[1]
    check_normalization(settings.normalization, c)
    percentiles = rcap_percentiles(settings.lower_bound, settings.interval)
    base = (M.blurred(x) if blurred_inputs is None else blurred_inputs) if want_curves else None
    if clean_probs is not None:
        clean_probs = check_probs(clean_probs, b, "clean_probs", x.device)
    if blurred_probs is not None:
        blurred_probs = check_probs(blurred_probs, b, "blurred_probs", x.device)
    with eval_mode(model), torch.inference_mode():
        queue = ForwardQueue(model, settings.batch_size)
        pending: dict[str, list[tuple[Any, slice]]] = {}
        for label, raw in maps.items():
            xi, m = prepare(
                x, raw, name=f"map {label!r}" if label else "maps", nonnegative=want_rcap
            )
            ordered = sorted_values(m)
            work: list[tuple[Any, slice]] = []
            if want_rcap:
                r = rcap_inputs(xi, m, percentiles, settings.normalization, ordered=ordered)
                work.append((r, queue.put(r.images, target.repeat_interleave(len(percentiles)))))
            if want_curves:
                a = curve_inputs(
                    xi, m, base, settings.auc_steps, clean_probs, blurred_probs, ordered=ordered
                )
                work.append((a, queue.put(a.images, target.repeat_interleave(a.per_image))))
            pending[label] = work
        probs = queue.probs()
    out: dict[str, dict[str, Any]] = {}
    for label, work in pending.items():
        scores: dict[str, Any] = {}
        for item, rows in work:
            res = item.result(probs[rows])
            if isinstance(res, M.RCAPResult):
                scores.update(
                    rcap=_floats(res.score),
                    rcap_hit=_floats(res.hit),
                    rcap_prob=_floats(res.prob),
                    rcap_valid=res.valid.cpu().tolist(),
                )
            else:
                scores.update(deletion=_floats(res.deletion), insertion=_floats(res.insertion))
                if "dauc" in metrics:
                    scores["dauc"] = _floats(res.dauc_per_image)
                if "iauc" in metrics:
                    scores["iauc"] = _floats(res.iauc_per_image)
        scores.update(_mask_scores(maps[label], metrics, masks, b))
        out[label] = scores
    return out


def _mask_scores(maps: Tensor, metrics: Sequence[str], masks: Tensor | None, b: int) -> dict:
    from absgrad import metrics as M

    mask_fns = {
        "lc_dice": M.lc_dice,
        "mae": M.mae,
        "mae_sqrt": M.mae_sqrt_paper,
        "pointing_game": M.pointing_game,
    }
    out = {}
    for name, fn in mask_fns.items():
        if name in metrics:
            if masks is None:
                raise AbsgradError(f"metric {name!r} needs masks and this batch has none")
            out[name] = _floats(fn(maps, masks.to(maps.device)).float())
    return out


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
