"""Saliency methods as samplers x aggregators (docs/methods.md).

``explain`` gives maps, ``attribute`` raw attributions, ``explain_many`` many methods with
each sampler computed once; ``METHODS`` is the registry; Captum-style classes per method.
"""

from absgrad.methods.aggregators import AGGREGATIONS, SampleStats, aggregate, variance_guide
from absgrad.methods.api import attribute, explain, explain_many, make_request, sampler_groups
from absgrad.methods.attribution import (
    CLASSES,
    Attribution,
    BlurIG,
    GradCAM,
    GuidedAbsoluteGrad,
    GuidedBackprop,
    GuidedIG,
    IntegratedGradients,
    SmoothGrad,
    VanillaGradient,
    VarGrad,
)
from absgrad.methods.processing import PROCESSINGS
from absgrad.methods.registry import METHODS, MethodDef
from absgrad.methods.reverse import reverse

__all__ = [
    "AGGREGATIONS",
    "CLASSES",
    "METHODS",
    "PROCESSINGS",
    "Attribution",
    "BlurIG",
    "GradCAM",
    "GuidedAbsoluteGrad",
    "GuidedBackprop",
    "GuidedIG",
    "IntegratedGradients",
    "MethodDef",
    "SampleStats",
    "SmoothGrad",
    "VanillaGradient",
    "VarGrad",
    "aggregate",
    "attribute",
    "explain",
    "explain_many",
    "make_request",
    "reverse",
    "sampler_groups",
    "variance_guide",
]
