"""Every name absgrad accepts, in one torch-free place.

The registries (:data:`absgrad.methods.METHODS`, :data:`absgrad.metrics.METRICS`,
:data:`absgrad.cases.CASES`, the processings, hooks and engines) read their names from here;
so do the parameter rules (:mod:`absgrad.params`), the run configuration's checks and the
command line's choices. Importing this module loads no torch, so ``absgrad list``, ``--help``,
``absgrad report`` and config checks answer at once. ``tests/test_names.py`` checks that each
registry holds exactly the names declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

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

#: gradient processings of the paper's Table 3: as is, positive (+), negative (-), absolute (A)
PROCESSINGS: tuple[str, ...] = ("raw", "pos", "neg", "abs")
#: how N samples become one attribution (SPEC §2.3)
AGGREGATIONS: tuple[str, ...] = ("mean", "var", "guided")
#: what the input gradient is taken of: the target logit (the paper), its log-softmax, its NLL
OBJECTIVES: tuple[str, ...] = ("logit", "log_softmax", "nll")
#: guided-backprop hook -> the processing it applies inside every activation's backward pass
GB_HOOKS: dict[str, str] = {
    "positive": "pos",  # the original guided backprop
    "negative": "neg",
    "both": "raw",  # the plain gradient
    "abs": "abs",
}
#: points and weights of a straight-path integral (IG): the reference's mean, Riemann rules
PATH_RULES: tuple[str, ...] = ("mean", "trapezoid", "left", "right", "middle")

#: forward engines of the metrics (:mod:`absgrad.inference.engine`)
ENGINES: tuple[str, ...] = ("auto", "eager", "compile", "onnx", "cudagraph")
#: numeric precision of the metrics' forward passes
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

#: the words ``--weights`` takes besides a file: a model spec's published or random weights
PRETRAINED = "pretrained"
RANDOM = "random"
WEIGHT_WORDS: tuple[str, ...] = (PRETRAINED, RANDOM)


@dataclass(frozen=True)
class MetricInfo:
    """What is known of a metric without computing it: names, direction, whether it needs masks."""

    key: str
    title: str
    latex: str
    higher_is_better: bool
    needs_mask: bool

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"``: which scores are better."""
        return "higher" if self.higher_is_better else "lower"


#: metric key -> its :class:`MetricInfo`, in the order tables show them
METRICS: dict[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("lc_dice", "Lc-dce", r"$L_{lc\text{-}dce}$", False, True),
        MetricInfo("mae", "MAE", "MAE", False, True),
        MetricInfo("rcap", "RCAP", "RCAP", True, False),
        MetricInfo("dauc", "DAUC", "DAUC", False, False),
        MetricInfo("iauc", "IAUC", "IAUC", True, False),
        MetricInfo("mae_sqrt", "sqrtMAE", r"$\sqrt{\mathrm{MAE}}$", False, True),
        MetricInfo("pointing_game", "Pointing", "Pointing", True, True),
    )
}
#: the metrics the paper reports (its Tables 1-3 columns)
PAPER_METRICS: tuple[str, ...] = ("lc_dice", "mae", "rcap", "dauc", "iauc")

#: case names, in the order of absgrad.cases.CASES ("folder": your data and model)
CASES: tuple[str, ...] = (
    "demo", "synthetic", "imagenet-sample", "imagenet-s", "isic", "places365", "folder",
)  # fmt: skip


def mask_free_metrics() -> tuple[str, ...]:
    """The metrics that need no ground-truth mask, in :data:`METRICS` order."""
    return tuple(k for k, m in METRICS.items() if not m.needs_mask)
