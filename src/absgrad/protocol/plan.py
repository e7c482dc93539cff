"""The plan of a run: which maps (specs), how they share samplers (groups), and the work units.

A work unit is one image batch x one sampler group. Everything a worker needs to compute a unit
is in ``(RunConfig, Unit)``, so any executor (local, another process, a cluster) reproduces it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from absgrad.protocol.catalogue import (
    REVERSED_BASES,
    MapSpec,
    Sampling,
    paper_maps,
    table_labels,
    with_sources,
)
from absgrad.protocol.config import ConfigError, RunConfig


def resolve_specs(
    config: RunConfig, case_reversal: Mapping[str, Sequence[float]], gradcam_layer: str | None
) -> dict[str, MapSpec]:
    """The maps this run computes: the tables' maps (or ``config.maps``) and ``extra_maps``."""
    reversal = {k: tuple(v) for k, v in case_reversal.items()}
    reversal.update(config.reversal or {})
    missing = [k for k in REVERSED_BASES if k not in reversal]
    if missing:
        raise ConfigError(
            f"config field 'reversal': no settings for {', '.join(missing)} "
            "(and the case gives none)"
        )
    sampling = Sampling.from_config(config, gradcam_layer)
    if config.grad_batch_size != "auto":  # the gradient chunk, when set or measured
        sampling = dataclasses.replace(sampling, batch_size=config.grad_batch_size)
    allspecs = paper_maps(sampling, reversal)
    if sampling.batch_size > config.batch_size:
        # Guided IG's calls carry one image per image of the unit, padded to the call size:
        # a gradient chunk above the unit's batch would only add padded images to every call
        for lb, spec in allspecs.items():
            if spec.method == "guidedig":
                params = {**spec.params, "batch_size": config.batch_size}
                allspecs[lb] = dataclasses.replace(spec, params=params)
    for label, m in config.extra_maps.items():
        if label in allspecs:
            raise ConfigError(f"config field 'extra_maps.{label}': label is already a protocol map")
        allspecs[label] = MapSpec(label, label, m["method"], dict(m["params"]))
    if config.maps is not None:
        unknown = [lb for lb in config.maps if lb not in allspecs]
        if unknown:
            raise ConfigError(
                f"config field 'maps': unknown map/method {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(allspecs)}"
            )
        wanted = list(config.maps)
    else:
        wanted = [lb for t in config.tables for lb in table_labels(t)] + list(config.extra_maps)
    return {lb: allspecs[lb] for lb in with_sources(wanted, allspecs)}


if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass(frozen=True)
class Group:
    """Maps from one sampler run (``labels``) and the maps reversed from them (``derived``).

    ``requests``: ``{label: {"method": name, "params": {...}}}`` of ``labels``; ``reversals``:
    ``{derived label: {"source": label, "remain": r, "mis": m}}``. Both are resolved once, in
    the plan, and travel with every unit of the group (JSON-ready).
    """

    name: str
    labels: tuple[str, ...]
    derived: tuple[str, ...]
    requests: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reversals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def make_group(specs: Mapping[str, MapSpec], labels: Sequence[str]) -> Group:
    """The group of computed maps ``labels`` (one sampler run), with every map of ``specs``
    reversed from them."""
    derived = tuple(lb for lb, s in specs.items() if s.derived and s.reverse_of in labels)
    requests = {lb: {"method": specs[lb].method, "params": dict(specs[lb].params)} for lb in labels}
    reversals = {}
    for lb in derived:
        remain, mis = specs[lb].reversal or (0.0, 0.0)
        reversals[lb] = {"source": specs[lb].reverse_of, "remain": remain, "mis": mis}
    return Group(labels[0], tuple(labels), derived, requests, reversals)


def group_specs(specs: Mapping[str, MapSpec]) -> list[Group]:
    """Group computed maps by shared sampler (``absgrad.methods.sampler_groups``)."""
    from absgrad.methods import sampler_groups

    requests = {lb: (s.method, s.params) for lb, s in specs.items() if not s.derived}
    if not requests:
        raise ConfigError("config field 'maps': nothing to compute")
    return [make_group(specs, labels) for labels in sampler_groups(requests)]


@dataclass(frozen=True)
class Unit:
    """One image batch x one sampler group."""

    id: str
    batch: int
    group: str
    indices: tuple[int, ...]  # positions in the case's samples
    image_ids: tuple[str, ...]
    labels: tuple[str, ...]
    derived: tuple[str, ...]
    seed: int
    save_maps: bool
    first_of_batch: bool  # this unit also stores the batch's images (for figures)
    requests: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # Group.requests
    reversals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # Group.reversals

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Unit:
        tuples = ("indices", "image_ids", "labels", "derived")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


def unit_id(batch: int, group: str) -> str:
    """The id of the unit computing sampler group ``group`` on image batch ``batch``."""
    return f"b{batch:05d}-{group}"


def batch_seed(seed: int, batch: int) -> int:
    """The seed of every sampler run on image batch ``batch`` (the same for all its groups)."""
    return (seed * 1_000_003 + batch * 7919 + 17) % (2**63 - 1)


def make_plan(
    config: RunConfig, groups: Sequence[Group], indices: Sequence[int], image_ids: Sequence[str]
) -> list[Unit]:
    """Units, batch by batch (so a worker reuses a batch's clean predictions across groups)."""
    if len(indices) != len(image_ids):
        raise ValueError("indices and image_ids differ in length")
    bs = config.batch_size
    units = []
    for b, start in enumerate(range(0, len(indices), bs)):
        idx = tuple(indices[start : start + bs])
        ids = tuple(image_ids[start : start + bs])
        keep = config.save_maps is True or (
            config.save_maps is not False and start + len(idx) <= config.save_maps
        )
        for gi, g in enumerate(groups):
            units.append(
                Unit(
                    id=unit_id(b, g.name),
                    batch=b,
                    group=g.name,
                    indices=idx,
                    image_ids=ids,
                    labels=g.labels,
                    derived=g.derived,
                    seed=batch_seed(config.seed, b),
                    save_maps=bool(keep),
                    first_of_batch=gi == 0,
                    requests=g.requests,
                    reversals=g.reversals,
                )
            )
    return units


@dataclass
class UnitResult:
    """What a unit produces: per-image scores per map, maps (optional), the batch's images."""

    unit: Unit
    scores: dict[str, dict[str, Any]]
    clean_prob: list[float]
    blurred_prob: list[float]
    timing: dict[str, float]
    maps: dict[str, np.ndarray] | None = None  # label -> (B, H, W) float16
    images: np.ndarray | None = None  # (B, H, W, 3) uint8, first unit of a batch only
    targets: list[int] | None = None  # (B,) target classes of the batch

    def record(self) -> dict[str, Any]:
        """The JSON-ready record stored for the unit."""
        return {
            "unit": self.unit.to_dict(),
            "image_ids": list(self.unit.image_ids),
            "targets": self.targets,
            "clean_prob": self.clean_prob,
            "blurred_prob": self.blurred_prob,
            "scores": self.scores,
            "timing": self.timing,
        }
