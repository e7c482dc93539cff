"""What ``absgrad list`` prints, importable without torch (so the command answers at once).

The registries stay the source of truth: :data:`absgrad.methods.METHODS`, the metric
declarations :data:`absgrad.metrics.METRICS` and :data:`absgrad.cases.CASES`.
``tests/test_catalogue.py`` checks that this catalogue lists exactly what they hold: a method,
metric or case added there must be added here too.
"""

from __future__ import annotations

#: method name -> title
METHODS: dict[str, str] = {
    "vg": "Vanilla Gradient",
    "sg": "SmoothGrad",
    "vargrad": "VarGrad",
    "gag": "Guided AbsoluteGrad",
    "ig": "Integrated Gradients",
    "blurig": "BlurIG",
    "guidedig": "Guided IG",
    "gb": "Guided Backprop",
    "gradcam": "Grad-CAM",
}

#: metric key -> (title, higher is better, needs masks)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "lc_dice": ("Lc-dce", False, True),
    "mae": ("MAE", False, True),
    "rcap": ("RCAP", True, False),
    "dauc": ("DAUC", False, False),
    "iauc": ("IAUC", True, False),
    "mae_sqrt": ("sqrtMAE", False, True),
    "pointing_game": ("Pointing", True, True),
}

#: case names, in the order of absgrad.cases.CASES ("folder": your data and model)
CASES: tuple[str, ...] = (
    "demo", "synthetic", "imagenet-sample", "imagenet-s", "isic", "places365", "folder",
)  # fmt: skip
