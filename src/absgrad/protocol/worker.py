"""The unit worker: ``run_unit(config, unit)`` computes one work unit's maps and scores.

It is a top-level function of picklable arguments, so it runs in this process, another process
or a cluster worker alike. A per-process :class:`WorkerContext` (case, model, recent batches
with their clean and blurred predictions) is built once and reused across units.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError
from absgrad.inference.allocator import tune_allocator
from absgrad.inference.chunk_sizes import auto_eval_batch_size, auto_grad_batch_size
from absgrad.methods.layers import find_layer
from absgrad.names import WEIGHT_WORDS
from absgrad.protocol.catalogue import MapSpec
from absgrad.protocol.config import FOLDER_OPTIONS, ConfigError, RunConfig
from absgrad.protocol.plan import Unit, UnitResult, resolve_specs
from absgrad.protocol.scoring import (
    EvalSettings,
    check_metrics,
    clean_and_blurred_probs,
    default_metrics,
    empty_masks,
    score_many,
)
from absgrad.utils.determinism import set_deterministic
from absgrad.utils.devices import model_device

log = logging.getLogger("absgrad.protocol")


@dataclass
class BatchData:
    """One image batch on the device, with what every unit of the batch reuses."""

    x: Tensor
    target: Tensor
    masks: Tensor | None
    pixels: np.ndarray  # (B, H, W, 3) uint8, for figures
    clean: Tensor | None = None
    blurred: Tensor | None = None
    blurred_x: Tensor | None = None  # the insertion start image, blurred once per batch
    cache: Any = (
        None  # absgrad.metrics.dedupe.ProbCache: perturbed images already scored in the batch
    )


@dataclass
class WorkerContext:
    """Per-process state: the case, its model on the device, the resolved maps and metrics."""

    config: RunConfig
    case: Any
    model: nn.Module
    device: torch.device
    specs: dict[str, MapSpec]
    metrics: tuple[str, ...]
    eval: EvalSettings
    batches: OrderedDict[int, BatchData] = field(default_factory=OrderedDict)
    stats: dict[str, int] = field(default_factory=lambda: {"batches_loaded": 0, "clean_passes": 0})
    forward: Any = (
        None  # the no-grad forward callable of the metrics (absgrad.inference.engine.Engine)
    )

    def __post_init__(self) -> None:
        if self.forward is None:
            self.use_engine("eager")

    def use_engine(self, kind: str) -> None:
        """Score with an :class:`absgrad.inference.engine.Engine` of ``kind`` (``eager``, ``compile`` or
        ``onnx``)."""
        from absgrad.inference.engine import Engine

        self.forward = Engine(
            self.model, kind, chunk=self.eval.batch_size, precision=self.config.precision
        )

    def batch(self, unit: Unit) -> BatchData:
        """The unit's images (loaded once per batch and kept for the batch's other units)."""
        if unit.batch in self.batches:
            self.batches.move_to_end(unit.batch)
            return self.batches[unit.batch]
        samples = self.case.samples()
        items = [samples[i] for i in unit.indices]
        ids = tuple(s.id for s in items)
        if ids != unit.image_ids:
            raise AbsgradError(
                f"unit {unit.id}: the case's samples at {list(unit.indices)} are {list(ids)}, "
                f"the plan expects {list(unit.image_ids)}; the data changed since the run started"
            )
        pixels = torch.stack([s.image for s in items])
        masks = None
        if self.case.has_masks and all(s.mask is not None for s in items):
            masks = torch.stack([s.mask.bool() for s in items]).to(self.device)
            empty = [s.id for s, e in zip(items, empty_masks(masks), strict=True) if e]
            if empty:
                message = (
                    f"{len(empty)} image(s) have an empty ground-truth mask ({', '.join(empty)}):"
                    " they are left out of the mask metrics"
                )
                warnings.warn(message, UserWarning, stacklevel=2)
                log.warning("%s", message)
        from absgrad.metrics.dedupe import ProbCache

        data = BatchData(
            cache=ProbCache(),
            x=self.case.normalize(pixels).to(self.device),
            target=torch.tensor([s.label for s in items], device=self.device),
            masks=masks,
            pixels=(pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(),
        )
        self.batches[unit.batch] = data
        self.stats["batches_loaded"] += 1
        while len(self.batches) > 2:
            self.batches.popitem(last=False)
        return data

    def probs(self, data: BatchData) -> tuple[Tensor, Tensor]:
        """Clean and blurred target probabilities of a batch, computed once."""
        if data.clean is None or data.blurred is None:
            from absgrad.metrics import blurred

            data.blurred_x = blurred(data.x)
            data.clean, data.blurred = clean_and_blurred_probs(
                self.forward, data.x, data.target, self.eval, data.blurred_x
            )
            self.stats["clean_passes"] += 1
        return data.clean, data.blurred


def resolve_device(name: str) -> torch.device:
    """The torch device of a config's ``device`` (``auto``: the best one here); a device this
    machine lacks is a :class:`ConfigError`."""
    from absgrad.utils.devices import best_device

    dev = torch.device(best_device() if name == "auto" else name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config field 'device': {name!r} asked but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"config field 'device': {name!r} asked but MPS is not available here")
    return dev


def load_case(config: RunConfig) -> Any:
    """The config's case object; unknown names raise :class:`ConfigError` listing the cases."""
    from absgrad.cases import CASES, get_case

    if config.case not in CASES:
        raise ConfigError(
            f"config field 'case': unknown case {config.case!r}; choose one of {', '.join(CASES)}"
        )
    if config.weights_sha is not None and config.weights not in (None, *WEIGHT_WORDS):
        from absgrad.models.spec import file_fingerprint

        if file_fingerprint(config.weights) != config.weights_sha:
            raise ConfigError(
                f"config field 'weights': the file {config.weights} here differs from the one "
                f"the run was configured with (SHA-256 prefix {config.weights_sha})"
            )
    if config.case == "folder":
        kw = {k: getattr(config, k) for k in FOLDER_OPTIONS if getattr(config, k) is not None}
        case = get_case("folder", data=config.data, weights=config.weights, **kw)
        if config.weights_sha is not None and config.weights == "pretrained":
            _check_published(case, config.weights_sha)
        return case
    return get_case(config.case, data=config.data, weights=config.weights)


def _check_published(case: Any, expected: str) -> None:
    """Refuse published weights whose files here differ from those the run was made with."""
    if case.spec.kind != "callable" and case.weights_sha() != expected:
        raise ConfigError(
            f"config field 'weights': the published weights of {case.spec} here "
            f"({case.weights_description()}) differ from those the run was configured with "
            f"(SHA-256 prefix {expected})"
        )


def resolve_weights(config: RunConfig) -> RunConfig:
    """``config`` with the published weights of its model spec (``weights: pretrained``)
    fetched into the library's cache and identified in ``weights_sha`` (part of the run's
    hash). The data's layout is checked first, so a wrong folder fails before any download;
    any other config comes back unchanged."""
    if config.case != "folder" or config.weights != "pretrained":
        return config
    from absgrad.models.spec import parse_model_spec

    if parse_model_spec(str(config.model)).kind == "callable":
        return config  # a factory's own weights: its parameters' fingerprint guards them
    sha = load_case(config).weights_sha()  # a weights_sha that differs is refused there
    return dataclasses.replace(config, weights_sha=sha)


def supported_specs(
    specs: dict[str, MapSpec], model: nn.Module, case: Any, layer: str | None, *, skip: bool
) -> dict[str, MapSpec]:
    """The maps ``model`` can give, checked before any work: guided backprop needs activation
    modules to guide, Grad-CAM a layer (the given one, or one the default rule finds). A map
    that cannot run is an error naming it and why, or with ``skip`` (``--skip-unsupported``) is
    left out with a warning, together with the maps reversed from it."""
    from absgrad.methods.gradients import differentiable_logits
    from absgrad.methods.guided_backprop import guided_backprop_support
    from absgrad.methods.layers import LayerError
    from absgrad.utils.validation import check_finite_logits

    example = case.normalize(torch.zeros(1, 3, *case.image_size)).to(model_device(model))
    with torch.enable_grad():  # every map needs the output's gradient: no model without one
        check_finite_logits(differentiable_logits(model, example.clone().requires_grad_(True)))
    problems: dict[str, str] = {}
    if any(s.method == "gb" for s in specs.values()):
        problem, caveat = guided_backprop_support(model, example)
        if caveat is not None:
            warnings.warn(caveat, UserWarning, stacklevel=3)
            log.warning("guided backprop: %s", caveat)
        for lb, s in specs.items():
            if s.method == "gb" and problem is not None:
                problems[lb] = f"guided backprop: {problem}"
    if layer is not None:
        find_layer(model, layer)  # a wrong --layer name is the user's error: it fails here
    elif any(s.method == "gradcam" for s in specs.values()):
        try:
            find_layer(model, None)  # the default rule finds no layer: the model cannot give it
        except LayerError as e:
            problems.update(
                {lb: f"Grad-CAM: {e}" for lb, s in specs.items() if s.method == "gradcam"}
            )
    if not problems:
        return specs
    dropped = set(problems) | {lb for lb, s in specs.items() if s.reverse_of in problems}
    first, why = next(iter(problems.items()))
    if not skip:
        others = (
            f" (and {len(dropped) - 1} more map(s) of the same kind)" if len(dropped) > 1 else ""
        )
        raise ConfigError(
            f"map {first!r}{others} cannot run on this model: {why}. Leave such maps out with "
            "--skip-unsupported (YAML: skip_unsupported: true) or choose maps with --methods"
        )
    message = f"leaving out {len(dropped)} map(s) the model cannot give ({', '.join(sorted(dropped))}): {why}"
    warnings.warn(message, UserWarning, stacklevel=3)
    log.warning("%s", message)
    return {lb: s for lb, s in specs.items() if lb not in dropped}


def build_context(
    config: RunConfig,
    *,
    case: Any = None,
    model_wrapper: Callable[[nn.Module], nn.Module] | None = None,
) -> WorkerContext:
    """Load the case and model for ``config`` (``model_wrapper`` wraps the model, e.g. to count).

    Also tunes this process's allocator for large tensors (:func:`absgrad.inference.allocator.
    tune_allocator`; ``ABSGRAD_TUNE_MALLOC=0`` opts out) and, with ``config.deterministic``,
    sets this process's deterministic switches (:mod:`absgrad.utils.determinism`)."""
    tune_allocator()
    set_deterministic(config.deterministic)  # before the model: cuBLAS reads its setting once
    case = case if case is not None else load_case(config)
    device = resolve_device(config.device)
    metrics = check_metrics(
        config.metrics or default_metrics(case.has_masks), case.has_masks, config.case
    )
    layer = config.gradcam_layer or case.gradcam_layer or None  # None: the default-layer rule
    specs = resolve_specs(config, case.reversal, layer)
    model = case.build_model(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # eval mode and frozen parameters once per run: the engines and explain_many then only
    # read the flags (gradients are taken with respect to the inputs)
    model.eval().requires_grad_(False)
    if config.grad_batch_size == "auto":  # the maps' gradient chunk (not hashed, as results agree)
        shape = tuple(case.samples()[0].image.shape)
        grad, costs = auto_grad_batch_size(model, shape, device, config.batch_size)
        if costs:
            log.info(
                "grad_batch_size auto: %d (per-image forward+backward cost %s)",
                grad,
                ", ".join(f"{k}: {v * 1e3:.2f} ms" for k, v in costs.items()),
            )
        config = dataclasses.replace(config, grad_batch_size=grad)
        specs = resolve_specs(config, case.reversal, layer)
    # every requested map checked against the model before any work (once, on the final specs)
    specs = supported_specs(specs, model, case, layer, skip=config.skip_unsupported)
    eval_batch_size = config.eval_batch_size
    if eval_batch_size == "auto":
        shape = tuple(case.samples()[0].image.shape)
        eval_batch_size, costs = auto_eval_batch_size(model, shape, device)
        log.info(
            "eval_batch_size auto: %d (per-image forward cost %s)",
            eval_batch_size,
            ", ".join(f"{k}: {v * 1e3:.2f} ms" for k, v in costs.items()),
        )
    if model_wrapper is not None:
        model = model_wrapper(model)
    settings = EvalSettings(
        normalization=case.normalization,
        lower_bound=config.rcap_lower_bound,
        interval=config.rcap_interval,
        auc_steps=config.auc_steps,
        batch_size=int(eval_batch_size),
    )
    model.eval().requires_grad_(False)  # a wrapped model too
    ctx = WorkerContext(config, case, model, device, specs, metrics, settings)
    if config.engine != "auto":  # auto: the runner chooses once it knows the run's size
        ctx.use_engine(config.engine)
    return ctx


_CONTEXTS: dict[tuple[str, str], WorkerContext] = {}


def get_context(config: RunConfig) -> WorkerContext:
    """This process's context for ``config`` (built on first use)."""
    key = (config.config_hash(), config.device)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = build_context(config)
    return _CONTEXTS[key]


def set_context(config: RunConfig, context: WorkerContext) -> None:
    """Install a context for ``config`` in this process (tests, custom models)."""
    _CONTEXTS.clear()
    _CONTEXTS[(config.config_hash(), config.device)] = context


def run_unit(config: RunConfig, unit: Unit, *, context: WorkerContext | None = None) -> UnitResult:
    """Compute one unit: its sampler group's maps (one sampler run), their reversed maps, and
    every metric of the case on every map. The unit carries its maps' requests and reversals
    (resolved and grouped by the plan); nothing is grouped again here."""
    from absgrad.methods import explain_many, reverse
    from absgrad.methods.randomness import image_seed

    t0 = time.perf_counter()
    set_deterministic(config.deterministic)  # in every worker process, whichever executor
    ctx = context if context is not None else get_context(config)
    data = ctx.batch(unit)
    clean, blurred = ctx.probs(data)
    t1 = time.perf_counter()
    if set(unit.requests) != set(unit.labels) or set(unit.reversals) != set(unit.derived):
        raise ValueError(
            f"unit {unit.id} does not carry the requests of its maps; build units with "
            "make_plan from group_specs (the plan resolves and groups the maps once)"
        )
    requests = {
        lb: (unit.requests[lb]["method"], unit.requests[lb]["params"]) for lb in unit.labels
    }
    # every image draws from its own generator, seeded from the run seed and its id
    seeds = [image_seed(config.seed, image_id) for image_id in unit.image_ids]
    maps = explain_many(ctx.model, data.x, data.target, requests, seeds=seeds, groups=[unit.labels])
    for lb in unit.derived:
        rev = unit.reversals[lb]
        shuffles = [image_seed(s, lb) for s in seeds]
        maps[lb] = reverse(
            maps[rev["source"]].cpu(), remain=rev["remain"], mis=rev["mis"], seeds=shuffles
        ).to(ctx.device)
    t2 = time.perf_counter()
    asked, run = data.cache.stats["requested"], data.cache.stats["computed"]
    scores = score_many(
        ctx.forward,
        data.x,
        data.target,
        maps,
        ctx.metrics,
        ctx.eval,
        masks=data.masks,
        clean_probs=clean,
        blurred_probs=blurred,
        blurred_inputs=data.blurred_x,
        cache=data.cache,
    )
    t3 = time.perf_counter()
    for key, before in (("perturbed_asked", asked), ("perturbed_run", run)):
        after = data.cache.stats["requested" if key == "perturbed_asked" else "computed"]
        ctx.stats[key] = ctx.stats.get(key, 0) + after - before
    return UnitResult(
        unit=unit,
        scores=scores,
        clean_prob=clean.cpu().double().tolist(),
        blurred_prob=blurred.cpu().double().tolist(),
        timing={"load": t1 - t0, "explain": t2 - t1, "metrics": t3 - t2, "total": t3 - t0},
        maps={lb: m.detach().cpu().numpy().astype(np.float16) for lb, m in maps.items()}
        if unit.save_maps
        else None,
        images=data.pixels if unit.first_of_batch else None,
        targets=[int(t) for t in data.target.cpu().tolist()],
    )
