"""Model-parameter randomisation sanity check (Adebayo et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from absgrad.utils.model_state import eval_mode
from absgrad.utils.validation import check_images, check_maps

ExplainFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class SanityResult:
    """``layers``: module names in the order they were re-initialised (top-down, cumulative).
    ``correlation (L, B)``: Spearman rank correlation between each image's map from the trained
    model and from the model with ``layers[:i+1]`` re-initialised. ``original (B, H, W)``: the
    trained model's maps. A sound method's correlation drops as layers are randomised."""

    layers: tuple[str, ...]
    correlation: Tensor
    original: Tensor

    def mean(self) -> dict[str, float]:
        """Mean correlation over images, per layer step."""
        return {
            name: float(v)
            for name, v in zip(self.layers, self.correlation.mean(dim=1), strict=True)
        }


def rank_average(values: Tensor) -> Tensor:
    """Ranks ``1..n`` of a 1-D tensor, ties given their average rank (as Spearman's rho needs)."""
    order = values.argsort()
    ordered = values[order]
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    group_rank = ends - (counts.to(torch.float64) - 1) / 2  # average of start+1 .. end
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = group_rank[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation ``(B,)`` between maps ``a`` and ``b`` of shape ``(B, ...)``.

    A map with no variation (constant) has no ranking: its correlation is reported as 0.
    """
    if a.shape != b.shape:
        raise ValueError(f"maps to correlate differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    out = []
    for x, y in zip(a.flatten(1), b.flatten(1), strict=True):
        rx, ry = rank_average(x), rank_average(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        den = (rx.square().sum() * ry.square().sum()).sqrt()
        out.append(torch.where(den > 0, (rx * ry).sum() / den.clamp_min(1e-300), 0.0))
    return torch.stack(out).to(torch.float32)


def default_layers(model: nn.Module) -> list[str]:
    """Modules holding parameters directly, in reverse definition order (output side first)."""
    names = [
        name
        for name, mod in model.named_modules()
        if name and any(True for _ in mod.parameters(recurse=False))
    ]
    return names[::-1]


def _reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise one module: its own ``reset_parameters`` if it has one (under a fixed seed),
    else every direct parameter from ``N(0, 0.02^2)``."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            reset()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            p.copy_(noise.to(device=p.device, dtype=p.dtype) * 0.02)


def sanity_check(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor | list[int],
    explain_fn: ExplainFn,
    *,
    layers: Sequence[str] | None = None,
    seed: int = 0,
) -> SanityResult:
    """Cascading model-parameter randomisation.

    Args:
        model: the trained classifier. Its weights, buffers and train/eval flags are restored
            afterwards, also when ``explain_fn`` raises.
        inputs: normalised inputs ``(B, C, H, W)``.
        target: classes passed on to ``explain_fn``.
        explain_fn: ``explain_fn(model, inputs, target) -> maps (B, H, W)``; called once for the
            trained model and once per layer step.
        layers: module names to re-initialise cumulatively, in the order given (give them
            top-down); ``None`` = :func:`default_layers` (every parameterised module, output
            side first).
        seed: seeds the re-initialisation.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be callable, got {type(explain_fn).__name__}")
    x = check_images(inputs)
    modules = dict(model.named_modules())
    names = default_layers(model) if layers is None else list(layers)
    if not names:
        raise ValueError("no layer to randomise: the model has no parameters or layers is empty")
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"layers not found in the model: {unknown}")

    def explain() -> Tensor:
        maps = explain_fn(model, x, target)  # type: ignore[arg-type]
        return check_maps(maps, x.shape[0], (x.shape[2], x.shape[3]), name="explain_fn output")

    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    try:
        with eval_mode(model):
            original = explain().detach()
            rows = []
            for name in names:
                _reinitialise(modules[name], generator)
                rows.append(spearman(original, explain().detach()))
    finally:
        model.load_state_dict(saved)
    return SanityResult(layers=tuple(names), correlation=torch.stack(rows), original=original)
