"""The paper's Tables 1-3 as data: which maps each needs, and how each table is laid out.

Map labels are short, file-safe names (``gag-85``, ``sg-pos``, ``ig-r``). A :class:`MapSpec`
is either computed by a method with parameters, or derived from another map by reversal
(the superscript-R rows of Table 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from absgrad.errors import AbsgradError

#: Table 1's percentiles p of GAG-p.
ABLATION_P = (0.0, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85)
#: Table 3's base methods and their reversal keys.
BASES = ("sg", "ig", "guidedig", "blurig", "gb")
VARIANTS = ("+", "-", "A", "G", "GA")


@dataclass(frozen=True)
class MapSpec:
    """One saliency map of the protocol: computed (``method``, ``params``) or reversed."""

    label: str
    title: str
    method: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    reverse_of: str | None = None
    reversal: tuple[float, float] | None = None  # (remain, mis)

    @property
    def derived(self) -> bool:
        return self.reverse_of is not None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "title": self.title}
        if self.derived:
            d.update(reverse_of=self.reverse_of, reversal=list(self.reversal or ()))
        else:
            d.update(method=self.method, params=dict(sorted(self.params.items())))
        return d


@dataclass(frozen=True)
class Sampling:
    """The protocol's sampling settings ("modifications = 20" in the paper)."""

    n_samples: int = 20
    spread: float = 0.15
    percentile: float = 0.85
    ig_trials: int = 2
    ig_steps: int = 5
    objective: str = "logit"
    batch_size: int = 4
    gradcam_layer: str | None = None


def gag_label(p: float) -> str:
    return f"gag-{round(p * 100)}"


def paper_maps(
    sampling: Sampling, reversal: Mapping[str, tuple[float, float]]
) -> dict[str, MapSpec]:
    """Every map Tables 1-3 use, in a stable order (sampler by sampler)."""
    s = sampling
    common = {"objective": s.objective, "batch_size": s.batch_size}
    noise = {**common, "n_samples": s.n_samples, "spread": s.spread}
    ig = {**common, "n_samples": s.ig_trials, "steps": s.ig_steps}
    path = {**common, "n_samples": s.n_samples}
    specs: list[MapSpec] = [
        MapSpec("sg", "SG", "sg", noise),
        MapSpec("vargrad", "VarGrad", "vargrad", noise),
        MapSpec("sg-pos", "SG+", "sg", {**noise, "processing": "pos"}),
        MapSpec("sg-neg", "SG-", "sg", {**noise, "processing": "neg"}),
        MapSpec(
            "sg-g",
            "SG-G",
            "sg",
            {**noise, "processing": "raw", "aggregation": "guided", "percentile": s.percentile},
        ),
    ]
    for p in ABLATION_P:
        specs.append(
            MapSpec(gag_label(p), f"GAG-{round(p * 100)}", "gag", {**noise, "percentile": p})
        )
    for base, title, params in (
        ("ig", "IG", ig),
        ("guidedig", "Guided IG", path),
        ("blurig", "BlurIG", path),
    ):
        specs += [
            MapSpec(base, title, base, params),
            MapSpec(f"{base}-pos", f"{title}+", base, {**params, "processing": "pos"}),
            MapSpec(f"{base}-neg", f"{title}-", base, {**params, "processing": "neg"}),
            MapSpec(f"{base}-abs", f"{title}-A", base, {**params, "processing": "abs"}),
            MapSpec(
                f"{base}-g",
                f"{title}-G",
                base,
                {**params, "aggregation": "guided", "percentile": s.percentile},
            ),
            MapSpec(
                f"{base}-ga",
                f"{title}-GA",
                base,
                {
                    **params,
                    "processing": "abs",
                    "aggregation": "guided",
                    "percentile": s.percentile,
                },
            ),
        ]
    specs.append(MapSpec("vg", "VG", "vg", common))
    for hook, label, title in (
        ("positive", "gb", "GB"),
        ("negative", "gb-neg", "GB-"),
        ("abs", "gb-abs", "GB-A"),
        ("both", "gb-both", "GB (both)"),
    ):
        specs.append(MapSpec(label, title, "gb", {**common, "hook": hook}))
    specs.append(
        MapSpec(
            "gradcam",
            "Grad-CAM",
            "gradcam",
            {"objective": s.objective, "layer": s.gradcam_layer, "batch_size": s.batch_size},
        )
    )
    titles = {"sg": "SG", "ig": "IG", "gb": "GB", "guidedig": "Guided IG", "blurig": "BlurIG"}
    for base in ("sg", "ig", "gb", "guidedig", "blurig"):
        if base not in reversal:
            raise AbsgradError(
                f"the case gives no reversal settings for {base!r} (needed by Table 2)"
            )
        remain, mis = reversal[base]
        specs.append(
            MapSpec(
                f"{base}-r",
                f"{titles[base]}^R",
                reverse_of=base,
                reversal=(float(remain), float(mis)),
            )
        )
    return {sp.label: sp for sp in specs}


@dataclass(frozen=True)
class TableDef:
    """A table's rows: ``(row title, map label)``; Table 3 rows are ratio rows instead."""

    number: int
    title: str
    rows: tuple[tuple[str, str], ...]
    reference_rows: tuple[str, ...] = ()  # excluded from "best" (Table 2: Grad-CAM, reversed maps)
    groups: tuple[int, ...] = ()  # row indices where a new group (rule) starts


TABLE1 = TableDef(
    1,
    "Ablation of p for Guided AbsoluteGrad (GAG-p)",
    tuple((f"GAG-{round(p * 100)}", gag_label(p)) for p in ABLATION_P),
)
TABLE2 = TableDef(
    2,
    "Gradient-based method comparison and Proposition 1 (reversed maps, ^R)",
    (
        ("Grad-CAM", "gradcam"),
        ("GAG", "gag-85"),
        ("VarGrad", "vargrad"),
        ("SG", "sg"),
        ("IG", "ig"),
        ("GB", "gb"),
        ("Guided IG", "guidedig"),
        ("BlurIG", "blurig"),
        ("VG", "vg"),
        ("SG^R", "sg-r"),
        ("IG^R", "ig-r"),
        ("GB^R", "gb-r"),
        ("Guided IG^R", "guidedig-r"),
        ("BlurIG^R", "blurig-r"),
    ),
    reference_rows=("gradcam", "sg-r", "ig-r", "gb-r", "guidedig-r", "blurig-r"),
    groups=(1, 9),
)
#: Table 3: base map label and the map label of each variant (+, -, A, G, GA) per base method.
#: GB's variants are backprop hooks; a variance guide does not apply to its single sample, so
#: its G and GA rows use the original (positive) hook, and its base is the "both" hook.
TABLE3_VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "sg": ("sg", {"+": "sg-pos", "-": "sg-neg", "A": "gag-0", "G": "sg-g", "GA": "gag-85"}),
    **{
        b: (b, {"+": f"{b}-pos", "-": f"{b}-neg", "A": f"{b}-abs", "G": f"{b}-g", "GA": f"{b}-ga"})
        for b in ("ig", "guidedig", "blurig")
    },
    "gb": ("gb-both", {"+": "gb", "-": "gb-neg", "A": "gb-abs", "G": "gb", "GA": "gb"}),
}
TABLE3_TITLE = (
    "Gradient processing: variant / base method, averaged over SG, IG, Guided IG, BlurIG, GB"
)
TABLES = {1: TABLE1, 2: TABLE2}


def table_labels(table: int) -> list[str]:
    """The map labels a table reports."""
    if table in TABLES:
        return [label for _, label in TABLES[table].rows]
    if table == 3:
        out: list[str] = []
        for base, variants in TABLE3_VARIANTS.values():
            out += [base, *variants.values()]
        return list(dict.fromkeys(out))
    raise AbsgradError(f"unknown table {table!r}; choose 1, 2 or 3")


def with_sources(labels: Iterable[str], specs: Mapping[str, MapSpec]) -> list[str]:
    """``labels`` plus the maps their reversed maps are derived from, in spec order."""
    need = set(labels)
    for label in list(need):
        src = specs[label].reverse_of
        if src is not None:
            need.add(src)
    return [label for label in specs if label in need]
