"""Every numeric and named parameter's rule, in one table, for the API, the CLI and YAML alike.

``PARAMS`` declares each method/sampler parameter once (type, finite, range, choices).
``check_param(name, value)`` applies a rule; ``check_fields(obj)`` applies the rules of every
field of a sampler dataclass (the samplers call it from ``__post_init__``), and the run
configuration's table (``protocol.config``) refers to the same rules. A violation raises
:class:`ParamError` (an ``AbsgradError``) that names the parameter, the rule and the value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from absgrad import names
from absgrad.errors import AbsgradError, excerpt


class ParamError(AbsgradError):
    """A parameter value breaks its rule; the message names the parameter."""


class UnknownParamError(ParamError, TypeError):
    """A parameter name the method does not take (also a ``TypeError``, like a bad keyword)."""


@dataclass(frozen=True)
class Rule:
    """What a parameter accepts.

    ``kind``: ``int``, ``float`` (any finite real number, ints too), ``bool``, ``choice``
    (one of ``choices``), ``tensor`` (a finite tensor or a finite number; None allowed) or
    ``any`` (not checked here). ``low``/``high`` bound numbers (``*_open``: strict bound).
    ``optional``: None is accepted.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] = ()
    optional: bool = False
    label: str = ""  # how a choice is named in "unknown <label>" (default: the parameter name)

    def options(self) -> tuple[Any, ...]:
        return self.choices() if callable(self.choices) else self.choices

    def describe(self) -> str:
        if self.kind == "choice":
            *head, last = map(str, self.options())
            return "one of " + (f"{', '.join(head)} or {last}" if head else last)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "tensor":
            return "a finite tensor or number (no NaN or infinity)"
        what = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            lo, hi = ("(" if self.low_open else "["), (")" if self.high_open else "]")
            return f"{what} in {lo}{_num(self.low)}, {_num(self.high)}{hi}"
        what = "an integer" if self.kind == "int" else "a finite number"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_num(self.high)}"
        return what

    def accepts(self, v: Any) -> bool:
        if v is None:
            return self.optional or self.kind in ("tensor", "any")
        if self.kind == "any":
            return True
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "choice":
            return isinstance(v, str) and v in self.options()
        if self.kind == "tensor":
            if _is_tensor(v):
                import torch

                return bool(torch.isfinite(v).all()) if v.is_floating_point() else True
            return _is_real(v) and math.isfinite(v)
        if isinstance(v, bool) or not _is_real(v):
            return False
        if self.kind == "int" and not isinstance(v, int):
            return False
        if not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.high_open else v > self.high))


def _is_tensor(v: Any) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "is_floating_point")


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


#: The rule of every method parameter (the samplers' fields and the common ones).
PARAMS: Mapping[str, Rule] = {
    # common to every method
    "processing": Rule("choice", choices=names.PROCESSINGS),
    "aggregation": Rule("choice", choices=names.AGGREGATIONS),
    "percentile": Rule("float", 0.0, 1.0, high_open=True),
    "objective": Rule("choice", choices=names.OBJECTIVES),
    "batch_size": Rule("int", 1),
    # SmoothGrad / VarGrad / GAG (noise sampler)
    "n_samples": Rule("int", 1),
    "spread": Rule("float", 0.0),
    "noise": Rule("tensor"),
    # Integrated Gradients (straight path)
    "steps": Rule("int", 1),
    "rule": Rule("choice", choices=names.PATH_RULES),
    "baselines": Rule("tensor"),
    # BlurIG
    "max_sigma": Rule("float", 0.0, low_open=True),
    "grad_step": Rule("float", 0.0, low_open=True),
    "kernel_size": Rule("int", 3),
    # Guided IG
    "fraction": Rule("float", 0.0, 1.0, low_open=True),
    "max_dist": Rule("float", 0.0, 1.0),
    # Guided Backprop
    "hook": Rule("choice", choices=tuple(names.GB_HOOKS), label="guided-backprop hook"),
    # Grad-CAM
    "layer": Rule("any"),
}


def check_param(
    name: str, value: Any, rule: Rule | None = None, *, where: str = "parameter"
) -> Any:
    """``value`` when it follows ``rule`` (default: ``PARAMS[name]``), else :class:`ParamError`."""
    rule = rule if rule is not None else PARAMS.get(name)
    if rule is None or rule.accepts(value):
        return value
    if rule.kind == "choice" and isinstance(value, str):
        raise ParamError(
            f"unknown {rule.label or name} {excerpt(value)}; choose one of {', '.join(rule.options())}"
        )
    shown = "a tensor with NaN or infinite values" if _is_tensor(value) else excerpt(value)
    raise ParamError(f"{name} must be {rule.describe()}, got {shown} ({where} {name!r})")


def check_params(params: Mapping[str, Any], *, where: str = "parameter") -> None:
    """Check every entry of ``params`` that has a rule in ``PARAMS``."""
    for k, v in params.items():
        check_param(k, v, where=where)


def check_fields(obj: Any) -> None:
    """Check each dataclass field of ``obj`` against ``PARAMS`` (samplers call this on creation)."""
    owner = getattr(obj, "name", type(obj).__name__)
    for f in dataclasses.fields(obj):
        check_param(f.name, getattr(obj, f.name), where=f"{owner} parameter")


__all__ = [
    "PARAMS",
    "ParamError",
    "UnknownParamError",
    "Rule",
    "check_fields",
    "check_param",
    "check_params",
]
