"""The one catalogue of the paper (Huang & Liu 2024): its maps and the layout of Tables 1-3.

Each map the protocol reports is declared here once, with

* ``method`` and ``params``: how it is computed (or ``reverse_of``: the map it is reversed from,
  the superscript-R rows of Table 2, with the case's ``reversal`` settings),
* ``base``: the paper's method it belongs to (``sg`` for SG+, SG-, SG-G and SG^R; ``gag`` for
  every GAG-p); plots colour by it,
* ``family``: the sampler family (``noise``, ``path``, ``backprop``, ``cam``).

Everything else (the tables, the claims, the figures, the run configuration's defaults) reads
these declarations instead of repeating them. Map labels are short, file-safe names
(``gag-85``, ``sg-pos``, ``ig-r``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from absgrad.errors import AbsgradError

#: Table 1's percentiles p of GAG-p.
ABLATION_P = (0.0, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85)
#: The GAG setting of Table 2 (p = 0.85).
GAG_P = 0.85
#: Display title of each of the paper's methods (the ``base`` of its maps).
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "gag": "GAG",
    "vargrad": "VarGrad",
    "sg": "SG",
    "ig": "IG",
    "gb": "GB",
    "guidedig": "Guided IG",
    "blurig": "BlurIG",
    "vg": "VG",
}
#: Sampler family of each method.
METHOD_FAMILY = {
    "gag": "noise",
    "vargrad": "noise",
    "sg": "noise",
    "ig": "path",
    "guidedig": "path",
    "blurig": "path",
    "vg": "backprop",
    "gb": "backprop",
    "gradcam": "cam",
}
#: The base methods whose maps are reversed (Proposition 1), in Table 2's order.
REVERSED_BASES = ("sg", "ig", "gb", "guidedig", "blurig")
#: Table 3's variant symbols (processing and aggregation of the gradients).
VARIANTS = ("+", "-", "A", "G", "GA")


def gag_label(p: float) -> str:
    """The map label of GAG-p (``gag-85`` for p = 0.85)."""
    return f"gag-{round(p * 100)}"


def reversed_label(base: str) -> str:
    """The map label of a base method's reversed map (``ig-r``)."""
    return f"{base}-r"


@dataclass(frozen=True)
class MapSpec:
    """One saliency map of the protocol: computed (``method``, ``params``) or reversed."""

    label: str
    title: str
    method: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    reverse_of: str | None = None
    reversal: tuple[float, float] | None = None  # (remain, mis)
    base: str | None = None  # the paper's method this map belongs to (METHOD_TITLES key)
    family: str | None = None  # sampler family (METHOD_FAMILY value)

    @property
    def derived(self) -> bool:
        return self.reverse_of is not None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "title": self.title}
        if self.derived:
            d.update(reverse_of=self.reverse_of, reversal=list(self.reversal or ()))
        else:
            d.update(method=self.method, params=dict(sorted(self.params.items())))
        if self.base is not None:
            d.update(base=self.base, family=self.family)
        return d


@dataclass(frozen=True)
class Sampling:
    """The protocol's sampling settings; the defaults are the paper's ("modifications = 20").

    :class:`absgrad.protocol.config.RunConfig` takes its defaults from here and
    :meth:`from_config` reads the fields of the same names back.
    """

    n_samples: int = 20
    spread: float = 0.15
    percentile: float = GAG_P
    ig_trials: int = 2
    ig_steps: int = 5
    objective: str = "logit"
    batch_size: int = 4
    gradcam_layer: str | None = None

    @classmethod
    def from_config(cls, config: Any, gradcam_layer: str | None = None) -> Sampling:
        """The sampling settings of a run configuration (any object with these attributes)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "gradcam_layer"]
        return cls(**{n: getattr(config, n) for n in names}, gradcam_layer=gradcam_layer)


PAPER_SAMPLING = Sampling()


def _variants(
    base: str, title: str, params: Mapping[str, Any], s: Sampling
) -> list[tuple[str, str, dict[str, Any]]]:
    """Table 3's processed/guided variants of a path method: ``(label, title, params)``."""
    guided = {"aggregation": "guided", "percentile": s.percentile}
    return [
        (base, title, dict(params)),
        (f"{base}-pos", f"{title}+", {**params, "processing": "pos"}),
        (f"{base}-neg", f"{title}-", {**params, "processing": "neg"}),
        (f"{base}-abs", f"{title}-A", {**params, "processing": "abs"}),
        (f"{base}-g", f"{title}-G", {**params, **guided}),
        (f"{base}-ga", f"{title}-GA", {**params, "processing": "abs", **guided}),
    ]


def paper_maps(
    sampling: Sampling, reversal: Mapping[str, tuple[float, float]]
) -> dict[str, MapSpec]:
    """Every map Tables 1-3 use, in a stable order (sampler by sampler).

    ``reversal``: ``{base: (remain, mis)}`` for each of :data:`REVERSED_BASES`.
    """
    s = sampling
    common = {"objective": s.objective, "batch_size": s.batch_size}
    noise = {**common, "n_samples": s.n_samples, "spread": s.spread}
    ig = {**common, "n_samples": s.ig_trials, "steps": s.ig_steps}
    path = {**common, "n_samples": s.n_samples}

    def spec(label: str, title: str, method: str, params: Mapping[str, Any], base: str) -> MapSpec:
        return MapSpec(label, title, method, params, base=base, family=METHOD_FAMILY[base])

    specs: list[MapSpec] = [
        spec("sg", "SG", "sg", noise, "sg"),
        spec("vargrad", "VarGrad", "vargrad", noise, "vargrad"),
        spec("sg-pos", "SG+", "sg", {**noise, "processing": "pos"}, "sg"),
        spec("sg-neg", "SG-", "sg", {**noise, "processing": "neg"}, "sg"),
        spec(
            "sg-g",
            "SG-G",
            "sg",
            {**noise, "processing": "raw", "aggregation": "guided", "percentile": s.percentile},
            "sg",
        ),
    ]
    for p in ABLATION_P:
        specs.append(
            spec(gag_label(p), f"GAG-{round(p * 100)}", "gag", {**noise, "percentile": p}, "gag")
        )
    for base, params in (("ig", ig), ("guidedig", path), ("blurig", path)):
        specs += [
            spec(lb, title, base, pr, base)
            for lb, title, pr in _variants(base, METHOD_TITLES[base], params, s)
        ]
    specs.append(spec("vg", "VG", "vg", common, "vg"))
    for hook, label, title in (
        ("positive", "gb", "GB"),
        ("negative", "gb-neg", "GB-"),
        ("abs", "gb-abs", "GB-A"),
        ("both", "gb-both", "GB (both)"),
    ):
        specs.append(spec(label, title, "gb", {**common, "hook": hook}, "gb"))
    specs.append(
        spec(
            "gradcam",
            "Grad-CAM",
            "gradcam",
            {"objective": s.objective, "layer": s.gradcam_layer, "batch_size": s.batch_size},
            "gradcam",
        )
    )
    for base in REVERSED_BASES:
        if base not in reversal:
            raise AbsgradError(
                f"the case gives no reversal settings for {base!r} (needed by Table 2)"
            )
        remain, mis = reversal[base]
        specs.append(
            MapSpec(
                reversed_label(base),
                f"{METHOD_TITLES[base]}^R",
                reverse_of=base,
                reversal=(float(remain), float(mis)),
                base=base,
                family=METHOD_FAMILY[base],
            )
        )
    return {sp.label: sp for sp in specs}


# -- table layouts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TableDef:
    """A table's rows: ``(row title, map label)``; Table 3 rows are ratio rows instead."""

    number: int
    title: str
    rows: tuple[tuple[str, str], ...]
    reference_rows: tuple[str, ...] = ()  # excluded from "best" (Table 2: Grad-CAM, reversed maps)
    groups: tuple[int, ...] = ()  # row indices where a new group (rule) starts


#: Table 2's gradient methods, in the paper's row order (GAG first): the maps ranked by "best".
GRADIENT_METHODS = ("gag-85", "vargrad", "sg", "ig", "gb", "guidedig", "blurig", "vg")
#: Each reversed map of Table 2 and the map it is reversed from.
REVERSED_PAIRS = tuple((reversed_label(b), b) for b in REVERSED_BASES)


def _title(label: str) -> str:
    return "GAG" if label == gag_label(GAG_P) else METHOD_TITLES[label]


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
        *((_title(lb), lb) for lb in GRADIENT_METHODS),
        *((f"{METHOD_TITLES[b]}^R", rev) for rev, b in REVERSED_PAIRS),
    ),
    reference_rows=("gradcam", *(rev for rev, _ in REVERSED_PAIRS)),
    groups=(1, 1 + len(GRADIENT_METHODS)),
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


# -- which maps each table needs -------------------------------------------------------------
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
