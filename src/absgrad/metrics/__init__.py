"""Metrics for saliency maps: RCAP, deletion/insertion AUC, segmentation metrics,
pointing game and the model-randomisation sanity check, as functions and as Quantus-style
objects. Each metric is declared once in :data:`METRICS` (direction, mask, perturbation).

Maps are ``(B, H, W)``; ``inputs`` are normalised model inputs ``(B, C, H, W)``.

The same metrics as ``torchmetrics.Metric`` objects (validation loops, DDP) live in the submodule
:mod:`absgrad.metrics.torchmetrics` (``pip install 'absgrad[torchmetrics]'``); they are not
exported here, where ``RCAP``, ``DAUC``, ... name the Quantus-style objects, and importing this
package never needs torchmetrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from absgrad.utils.lazy import lazy_exports

# Names resolve on first use, so that torch-free parts (absgrad.metrics.grid, used by the
# report) import without torch.
#: public name -> the submodule that defines it
_EXPORTS = {
    "AUCResult": "absgrad.metrics.curves",
    "auc": "absgrad.metrics.curves",
    "blurred": "absgrad.metrics.curves",
    "deletion_insertion": "absgrad.metrics.curves",
    "target_probs": "absgrad.metrics.curves",
    "ForwardQueue": "absgrad.metrics.forward",
    "Perturbation": "absgrad.metrics.perturbation",
    "PerturbContext": "absgrad.metrics.perturbation",
    "DAUC": "absgrad.metrics.quantus_api",
    "IAUC": "absgrad.metrics.quantus_api",
    "MAE": "absgrad.metrics.quantus_api",
    "RCAP": "absgrad.metrics.quantus_api",
    "LcDice": "absgrad.metrics.quantus_api",
    "MAESqrtPaper": "absgrad.metrics.quantus_api",
    "ModelParameterRandomisation": "absgrad.metrics.quantus_api",
    "PointingGame": "absgrad.metrics.quantus_api",
    "rcap_percentiles": "absgrad.metrics.grid",
    "RCAPResult": "absgrad.metrics.recover",
    "rcap": "absgrad.metrics.recover",
    "METRICS": "absgrad.metrics.registry",
    "PERTURBATIONS": "absgrad.metrics.registry",
    "MetricDef": "absgrad.metrics.registry",
    "get_metric": "absgrad.metrics.registry",
    "SanityResult": "absgrad.metrics.sanity",
    "sanity_check": "absgrad.metrics.sanity",
    "spearman": "absgrad.metrics.sanity",
    "lc_dice": "absgrad.metrics.segmentation",
    "mae": "absgrad.metrics.segmentation",
    "mae_sqrt_paper": "absgrad.metrics.segmentation",
    "pointing_game": "absgrad.metrics.segmentation",
    "IMAGENET": "absgrad.utils.normalization",
    "SYMMETRIC": "absgrad.utils.normalization",
}

__all__ = [
    "METRICS",
    "MetricDef",
    "get_metric",
    "PERTURBATIONS",
    "Perturbation",
    "PerturbContext",
    "ForwardQueue",
    "IMAGENET",
    "SYMMETRIC",
    "rcap",
    "rcap_percentiles",
    "RCAPResult",
    "deletion_insertion",
    "AUCResult",
    "auc",
    "blurred",
    "target_probs",
    "lc_dice",
    "mae",
    "mae_sqrt_paper",
    "pointing_game",
    "sanity_check",
    "SanityResult",
    "spearman",
    "RCAP",
    "DAUC",
    "IAUC",
    "LcDice",
    "MAE",
    "MAESqrtPaper",
    "PointingGame",
    "ModelParameterRandomisation",
]


__getattr__, __dir__ = lazy_exports("absgrad.metrics", _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover
    from absgrad.metrics.curves import AUCResult, auc, blurred, deletion_insertion, target_probs
    from absgrad.metrics.forward import ForwardQueue
    from absgrad.metrics.grid import rcap_percentiles
    from absgrad.metrics.perturbation import Perturbation, PerturbContext
    from absgrad.metrics.quantus_api import (
        DAUC,
        IAUC,
        MAE,
        RCAP,
        LcDice,
        MAESqrtPaper,
        ModelParameterRandomisation,
        PointingGame,
    )
    from absgrad.metrics.recover import RCAPResult, rcap
    from absgrad.metrics.registry import METRICS, PERTURBATIONS, MetricDef, get_metric
    from absgrad.metrics.sanity import SanityResult, sanity_check, spearman
    from absgrad.metrics.segmentation import lc_dice, mae, mae_sqrt_paper, pointing_game
    from absgrad.utils.normalization import IMAGENET, SYMMETRIC
