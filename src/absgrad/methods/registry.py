"""The methods of the paper, each a declaration: a sampler and default processing/aggregation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from absgrad import names
from absgrad.methods.gradcam import GradCamSampler
from absgrad.methods.guided_backprop import GuidedBackpropSampler
from absgrad.methods.samplers import (
    BlurPathSampler,
    GuidedPathSampler,
    NoiseSampler,
    Sampler,
    SingleSampler,
    StraightPathSampler,
)
from absgrad.params import ParamError, UnknownParamError

#: Parameters every method takes (besides its sampler's own).
COMMON_DEFAULTS: dict[str, Any] = {
    "processing": "raw",
    "aggregation": "mean",
    "percentile": 0.85,
    "objective": "logit",
    "batch_size": 4,
}


@dataclass(frozen=True)
class MethodDef:
    """A saliency method: ``sampler`` x (``processing``, ``aggregation``) with its defaults."""

    name: str
    title: str
    sampler: type[Sampler]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def sampler_params(self) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(self.sampler)}

    @property
    def defaults(self) -> dict[str, Any]:
        """Every parameter the method accepts, with its default value."""
        return {**COMMON_DEFAULTS, **self.sampler_params, **self.overrides}


def _declare(
    name: str, sampler: type[Sampler], overrides: dict[str, Any] | None = None
) -> MethodDef:
    """A built-in method, titled as :data:`absgrad.names.METHODS` names it."""
    return MethodDef(name, names.METHODS[name], sampler, overrides or {})


_DEFS = [
    _declare("vg", SingleSampler),
    _declare("sg", NoiseSampler),
    _declare("vargrad", NoiseSampler, {"aggregation": "var"}),
    _declare("gag", NoiseSampler, {"processing": "abs", "aggregation": "guided"}),
    _declare("ig", StraightPathSampler),
    _declare("blurig", BlurPathSampler),
    _declare("guidedig", GuidedPathSampler),
    _declare("gb", GuidedBackpropSampler),
    _declare("gradcam", GradCamSampler),
]

#: Registry of method names -> :class:`MethodDef` (``METHODS["gag"].defaults`` lists parameters).
METHODS = MappingProxyType({d.name: d for d in _DEFS})


def get_method(name: object) -> MethodDef:
    if not isinstance(name, str) or name.lower() not in METHODS:
        raise ParamError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name.lower()]


def resolve_params(method: MethodDef, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``; unknown names raise ``TypeError`` listing valid ones."""
    allowed = method.defaults
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UnknownParamError(
            f"unknown parameter(s) {', '.join(unknown)} for method {method.name!r}; "
            f"valid: {', '.join(sorted(allowed))}"
        )
    return {**allowed, **params}
