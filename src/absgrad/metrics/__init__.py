"""Metrics for saliency maps: RCAP, deletion/insertion AUC, segmentation metrics,
pointing game and the model-randomisation sanity check, as functions and as Quantus-style
objects. Each metric is declared once in :data:`METRICS` (direction, mask, perturbation).

Maps are ``(B, H, W)``; ``inputs`` are normalised model inputs ``(B, C, H, W)``.
"""

from __future__ import annotations

from absgrad.metrics.auc import AUCResult, auc, blurred, deletion_insertion, target_probs
from absgrad.metrics.forward import ForwardQueue
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
from absgrad.metrics.rcap import RCAPResult, rcap, rcap_percentiles
from absgrad.metrics.registry import METRICS, PERTURBATIONS, MetricDef, get_metric
from absgrad.metrics.sanity import SanityResult, sanity_check, spearman
from absgrad.metrics.segmentation import lc_dice, mae, mae_sqrt_paper, pointing_game
from absgrad.utils.normalization import IMAGENET, SYMMETRIC

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
