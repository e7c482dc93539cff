"""The protocol's metrics: names, directions, and scoring one batch of maps with all of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


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
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        if METRICS[name].needs_mask and not has_masks:
            raise ValueError(f"metric {name!r} needs ground-truth masks and case {case!r} has none")
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
    from absgrad import metrics as M

    out: dict[str, Any] = {}
    if "rcap" in metrics:
        r = M.rcap(
            model,
            x,
            target,
            maps,
            lower_bound=settings.lower_bound,
            interval=settings.interval,
            normalization=settings.normalization,
            batch_size=settings.batch_size,
        )
        out.update(
            rcap=_floats(r.score),
            rcap_hit=_floats(r.hit),
            rcap_prob=_floats(r.prob),
            rcap_valid=r.valid.cpu().tolist(),
        )
    if "dauc" in metrics or "iauc" in metrics:
        a = M.deletion_insertion(
            model,
            x,
            target,
            maps,
            steps=settings.auc_steps,
            normalization=settings.normalization,
            batch_size=settings.batch_size,
            clean_probs=clean_probs,
            blurred_probs=blurred_probs,
        )
        out.update(deletion=_floats(a.deletion), insertion=_floats(a.insertion))
        if "dauc" in metrics:
            out["dauc"] = _floats(a.dauc_per_image)
        if "iauc" in metrics:
            out["iauc"] = _floats(a.iauc_per_image)
    mask_fns = {
        "lc_dice": M.lc_dice,
        "mae": M.mae,
        "mae_sqrt": M.mae_sqrt_paper,
        "pointing_game": M.pointing_game,
    }
    for name, fn in mask_fns.items():
        if name in metrics:
            if masks is None:
                raise ValueError(f"metric {name!r} needs masks and this batch has none")
            out[name] = _floats(fn(maps, masks.to(maps.device)).float())
    return out


def clean_and_blurred_probs(
    model: nn.Module, x: Tensor, target: Tensor, settings: EvalSettings
) -> tuple[Tensor, Tensor]:
    """Target probabilities on the clean and on the blurred images (deletion/insertion r = 0)."""
    from absgrad import metrics as M

    with torch.inference_mode():
        clean = M.target_probs(model, x, target, batch_size=settings.batch_size)
        blur = M.target_probs(model, M.blurred(x), target, batch_size=settings.batch_size)
    return clean, blur
