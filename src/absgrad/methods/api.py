"""``explain``/``attribute``: one method on a batch; ``explain_many``: many methods, each sampler once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError
from absgrad.methods.aggregators import (
    SampleStats,
    aggregate,
    needed_processings,
    variance_needed,
)
from absgrad.methods.gradients import predict
from absgrad.methods.randomness import GeneratorArg, SeedsArg, image_generators
from absgrad.methods.registry import MethodDef, get_method, resolve_params
from absgrad.methods.samplers import GradContext, Sampler
from absgrad.params import ParamError, check_params
from absgrad.utils.maps import to_map
from absgrad.utils.model_state import eval_mode
from absgrad.utils.validation import check_images, resolve_target


@dataclass(frozen=True)
class Request:
    """A validated method call: the method, its sampler and its parameters."""

    method: MethodDef
    params: dict[str, Any]
    sampler: Sampler

    @property
    def group_key(self) -> tuple:
        """Requests with equal keys share one sampler run."""
        return (self.sampler.key(), self.params["objective"], self.params["batch_size"])


def make_request(method: str | MethodDef, params: Mapping[str, Any]) -> Request:
    """Validate ``params`` for ``method`` (errors name the bad parameter) and build its sampler."""
    m = method if isinstance(method, MethodDef) else get_method(method)
    p = resolve_params(m, dict(params))
    check_params(p, where=f"method {m.name!r} parameter")  # every value against its rule
    n = p.get("n_samples", 1)
    if p["aggregation"] in ("var", "guided") and n < 2:
        raise ParamError(
            f"aggregation {p['aggregation']!r} needs a variance over samples: n_samples must be >= 2"
            + ("" if "n_samples" in p else f" and method {m.name!r} takes a single sample")
        )
    sampler = m.sampler(**{k: p[k] for k in m.sampler_params})
    return Request(m, p, sampler)


def _prepare(
    model: object, inputs: object, target: object
) -> tuple[nn.Module, Tensor, Tensor | None]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = check_images(inputs)
    return model, x, resolve_target(target, x.shape[0])


def _target_or_prediction(model: nn.Module, x: Tensor, t: Tensor | None) -> Tensor:
    if t is not None:
        return t.to(x.device)
    return predict(model, x).argmax(dim=1)


def _run_group(
    reqs: list[Request], model: nn.Module, x: Tensor, t: Tensor, generators: list | None
) -> list[Tensor]:
    """Run the shared sampler of ``reqs`` once (``generators``: one per image, or None); return
    each request's attribution."""
    first = reqs[0]
    source = first.sampler.variance_source
    procs: set[str] = set()
    var_of: set[str] = set()
    for r in reqs:
        procs |= needed_processings(r.params["processing"], r.params["aggregation"], source)
        var_of |= variance_needed(r.params["processing"], r.params["aggregation"], source)
    stats = SampleStats(sorted(procs), source, variance_of=var_of)
    ctx = GradContext(
        model, x, t, first.params["objective"], first.params["batch_size"], generators
    )
    first.sampler.run(ctx, stats)
    return [
        aggregate(stats, r.params["processing"], r.params["aggregation"], r.params["percentile"])
        for r in reqs
    ]


def attribute(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | None,
    method: str,
    *,
    generator: GeneratorArg = None,
    seeds: SeedsArg = None,
    **params: Any,
) -> Tensor:
    """The attribution ``(B, C, H, W)`` (Grad-CAM: ``(B, 1, H, W)``) before the map step.

    ``generator``/``seeds``: the random draws, as in :func:`explain`."""
    req = make_request(method, params)
    model, x, t = _prepare(model, inputs, target)
    gens = image_generators(x.shape[0], generator, seeds)
    with eval_mode(model, frozen=True):
        t = _target_or_prediction(model, x, t)
        return _run_group([req], model, x, t, gens)[0].detach()


def explain(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | None,
    method: str,
    *,
    generator: GeneratorArg = None,
    seeds: SeedsArg = None,
    **params: Any,
) -> Tensor:
    """Saliency maps ``(B, H, W)`` in [0, 1] (per-image min-max) for ``inputs (B, C, H, W)``.

    Args:
        model: a classifier returning ``(B, K)`` logits; its mode and ``requires_grad`` flags
            are restored afterwards.
        inputs: normalised model inputs ``(B, C, H, W)``.
        target: class per image: an int, a ``(B,)`` tensor, or None for the predicted class.
        method: one of ``absgrad.METHODS`` (``"gag"``, ``"sg"``, ``"vargrad"``, ``"ig"``, ...).
        generator: the random draws (noise, baselines): one CPU ``torch.Generator`` shared by
            the images in batch order, or a list of ``B`` generators, one per image (then each
            map is the same whatever batch it is computed in).
        seeds: ``B`` integers, one per image, instead of ``generator`` (each seeds a fresh
            generator for its image).
        **params: ``n_samples``, ``spread``, ``percentile``, ``processing``, ``aggregation``,
            ``objective``, ``batch_size``, ... (``absgrad.METHODS[method].defaults``).
    """
    return to_map(
        attribute(model, inputs, target, method, generator=generator, seeds=seeds, **params)
    )


def explain_many(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | None,
    requests: Mapping[str, tuple[str, Mapping[str, Any]]],
    *,
    seed: int | None = None,
    seeds: SeedsArg = None,
    on_group: Any = None,
    groups: Sequence[Sequence[str]] | None = None,
) -> dict[str, Tensor]:
    """Maps for many methods at once; every distinct sampler runs once and serves all its methods.

    ``requests``: ``{label: (method, params)}``. With ``seed``, each sampler run gets a fresh
    ``torch.Generator`` seeded with it, so every map equals ``explain(..., generator=
    torch.Generator().manual_seed(seed), **params)``. With ``seeds`` (one integer per image),
    each sampler run gets fresh per-image generators, so every map equals ``explain(...,
    seeds=seeds, **params)`` and does not depend on the batch. ``on_group(n_methods)`` is
    called after each sampler run (progress). ``groups``: the labels of each sampler run when
    already grouped (e.g. by a plan, as :func:`sampler_groups` does); they are checked, not redone.
    Returns ``{label: (B, H, W)}``.
    """
    built = {label: make_request(m, p) for label, (m, p) in requests.items()}
    model, x, t = _prepare(model, inputs, target)
    if seed is not None and seeds is not None:
        raise AbsgradError("give seed= or seeds=, not both")
    image_generators(x.shape[0], seeds=seeds)  # checks seeds before any work
    runs = _grouped(built) if groups is None else _checked_groups(built, groups)
    out: dict[str, Tensor] = {}
    with eval_mode(model, frozen=True):
        t = _target_or_prediction(model, x, t)
        for labels in runs:
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            gens = image_generators(x.shape[0], gen, seeds)
            attrs = _run_group([built[lb] for lb in labels], model, x, t, gens)
            for lb, a in zip(labels, attrs, strict=True):
                out[lb] = to_map(a.detach())
            if on_group is not None:
                on_group(len(labels))
    return {lb: out[lb] for lb in requests}


def _grouped(built: Mapping[str, Request]) -> list[list[str]]:
    """Labels sharing one sampler run, in first-appearance order."""
    groups: dict[tuple, list[str]] = {}
    for label, req in built.items():
        groups.setdefault(req.group_key, []).append(label)
    return list(groups.values())


def _checked_groups(
    built: Mapping[str, Request], groups: Sequence[Sequence[str]]
) -> list[list[str]]:
    """``groups`` as lists, after checking that they cover ``built`` once and share samplers."""
    flat = [lb for g in groups for lb in g]
    if sorted(flat) != sorted(built):
        raise AbsgradError(
            f"groups must name every requested label once: got {flat}, requests {list(built)}"
        )
    for g in groups:
        if not g or len({built[lb].group_key for lb in g}) > 1:
            raise AbsgradError(f"the maps {list(g)} do not share one sampler run")
    return [list(g) for g in groups]


def sampler_groups(requests: Mapping[str, tuple[str, Mapping[str, Any]]]) -> list[list[str]]:
    """How ``explain_many`` would group ``requests`` (labels sharing one sampler run)."""
    return _grouped({label: make_request(m, p) for label, (m, p) in requests.items()})
