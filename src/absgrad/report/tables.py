"""Build Tables 1-3 from results, as data (rendering: :mod:`absgrad.report.render`).

Every cell carries its 95% percentile bootstrap interval over images
(:mod:`absgrad.report.stats`); Table 3's ratios bootstrap the ratio of means with the
images resampled together for the base map and its variant (paired).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from absgrad.names import METRICS, MetricInfo
from absgrad.protocol.catalogue import TABLE3_TITLE, TABLE3_VARIANTS, TABLES, VARIANTS
from absgrad.report.results import Results
from absgrad.report.stats import LEVEL, N_RESAMPLES, Interval, bootstrap_ci


@lru_cache(maxsize=1)
def paper_numbers() -> dict[str, Any]:
    """The paper's Tables 1-3 (``report/paper_tables.json``)."""
    text = (resources.files("absgrad.report") / "paper_tables.json").read_text()
    return json.loads(text)


def paper_case_name(case: str) -> str | None:
    """The paper's column name for one of its cases (``imagenet-s`` -> ``ImageNet-S``)."""
    return paper_numbers()["cases"].get(case)


@dataclass
class Row:
    title: str
    key: str  # map label, or the variant symbol in Table 3
    values: dict[str, float | None]
    paper: dict[str, float] = field(default_factory=dict)
    n_images: int = 0
    ci: dict[str, Interval] = field(default_factory=dict)  # metric -> interval over images


@dataclass
class Table:
    number: int
    title: str
    columns: list[MetricInfo]
    rows: list[Row]
    reference_rows: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)
    paper_case: str | None = None
    decimals: int = 4
    level: float = LEVEL

    @property
    def paper_keys(self) -> set[str]:
        """Metrics for which the paper prints numbers in this table (shown beside ours)."""
        return {k for r in self.rows for k in r.paper} if self.paper_case else set()

    def best(self, metric: MetricInfo) -> set[int]:
        """Row indices holding the best value of a column (reference rows excluded)."""
        vals = [
            (i, r.values.get(metric.key))
            for i, r in enumerate(self.rows)
            if r.key not in self.reference_rows and r.values.get(metric.key) is not None
        ]
        if not vals:
            return set()
        pick = max if metric.higher_is_better else min
        target = pick(v for _, v in vals)
        return {i for i, v in vals if v == target}

    def improves(self, row: Row, metric: MetricInfo) -> bool:
        """Table 3: the ratio shows an improvement over the base method."""
        v = row.values.get(metric.key)
        return self.number == 3 and v is not None and (v > 1 if metric.higher_is_better else v < 1)


def _columns(results: Results) -> list[MetricInfo]:
    return [METRICS[m] for m in METRICS if m in results.metrics]


def _paper_row(table: int, key: str, case: str | None) -> dict[str, float]:
    if case is None:
        return {}
    return dict(paper_numbers()["tables"].get(str(table), {}).get(key, {}).get(case, {}))


@dataclass(frozen=True)
class Bootstrap:
    """How the tables' intervals are computed: resamples, level, seed."""

    n_resamples: int = N_RESAMPLES
    level: float = LEVEL
    seed: int = 0

    def ci(self, values: Any, of: Any = None) -> Interval:
        out = bootstrap_ci(
            values, of=of, n_resamples=self.n_resamples, level=self.level, seed=self.seed
        )
        assert isinstance(out, Interval)
        return out


def _map_row(
    results: Results, title: str, label: str, cols: list[MetricInfo], boot: Bootstrap, **kw: Any
) -> Row:
    values: dict[str, float | None] = {}
    ci: dict[str, Interval] = {}
    for m in cols:
        v = results.scores(label, m.key)
        values[m.key] = None if v is None or v.size == 0 else float(v.mean())
        if values[m.key] is not None and np.all(np.isfinite(v)):
            ci[m.key] = boot.ci(v)
    return Row(title, label, values, n_images=results.n_images(label), ci=ci, **kw)


def build_tables(
    results: Results,
    tables: tuple[int, ...] = (1, 2, 3),
    compare: str | None = None,
    *,
    bootstrap: Bootstrap | None = None,
) -> list[Table]:
    """The requested tables; ``compare``: a paper case name (``ImageNet-S``) to show beside ours.

    ``bootstrap``: interval settings (default: 2,000 resamples, 95%, the run's seed).
    """
    boot = bootstrap or Bootstrap(seed=int(results.meta.get("config", {}).get("seed", 0)))
    cols = _columns(results)
    out = []
    for n in tables:
        if n in TABLES:
            tdef = TABLES[n]
            rows = [
                _map_row(results, title, label, cols, boot, paper=_paper_row(n, label, compare))
                for title, label in tdef.rows
            ]
            t = Table(
                n,
                tdef.title,
                cols,
                rows,
                tdef.reference_rows,
                tdef.groups,
                paper_case=compare,
                level=boot.level,
            )
            if n == 2:
                t.notes.append(
                    "Best marked among the gradient methods: not Grad-CAM (as in the paper), "
                    "not the reversed maps."
                )
            out.append(t)
        elif n == 3:
            out.append(_table3(results, cols, compare, boot))
    extra = list(results.meta.get("config", {}).get("extra_maps") or {})
    if extra:
        rows = [_map_row(results, lb, lb, cols, boot) for lb in extra]
        out.append(Table(4, "Extra maps (the config's extra_maps)", cols, rows, level=boot.level))
    for t in out:
        missing = [r.title for r in t.rows if all(v is None for v in r.values.values())]
        if missing:
            t.notes.append(f"Not computed in this run: {', '.join(missing)}.")
        if any(m.key == "mae_sqrt" for m in t.columns) and t.number != 3:
            t.notes.append(
                "sqrtMAE = sqrt(mean |M - S|): the number the paper prints as MAE "
                "(MAE is the plain mean |M - S|)."
            )
        if any(r.ci for r in t.rows):
            t.notes.append(
                f"± : half-width of the {boot.level:.0%} percentile bootstrap interval over "
                f"images ({boot.n_resamples} resamples, seed {boot.seed}"
                + ("; paired ratio of means" if t.number == 3 else "")
                + "); the CSV gives its bounds."
            )
    return out


def _ratio_of_means(k: int) -> Any:
    """Mean over k pairs of (variant mean / base mean); columns are [base, variant] x k."""

    def of(means: Any) -> Any:
        return sum(means[..., 2 * j + 1] / means[..., 2 * j] for j in range(k)) / k

    return of


def _table3(
    results: Results, cols: list[MetricInfo], compare: str | None, boot: Bootstrap
) -> Table:
    rows = []
    used: dict[str, list[str]] = {}
    for sym in VARIANTS:
        values: dict[str, float | None] = {}
        ci: dict[str, Interval] = {}
        for m in cols:
            pairs: list[str] = []
            for base_name, (base, variants) in TABLE3_VARIANTS.items():
                b, v = results.value(base, m.key), results.value(variants[sym], m.key)
                if b is not None and v is not None and b != 0:
                    pairs += [base, variants[sym]]
                    if base_name not in used.setdefault(sym, []):
                        used[sym].append(base_name)
            both = results.paired(pairs, m.key) if pairs else None
            if both is None or not np.all(np.isfinite(both[1])):
                values[m.key] = None
                continue
            cell = boot.ci(both[1], of=_ratio_of_means(len(pairs) // 2))
            values[m.key], ci[m.key] = cell.value, cell
        n_img = max((c.n for c in ci.values()), default=0)
        rows.append(Row(sym, sym, values, _paper_row(3, sym, compare), n_img, ci))
    t = Table(3, TABLE3_TITLE, cols, rows, paper_case=compare, decimals=2, level=boot.level)
    bases = sorted({b for v in used.values() for b in v})
    t.notes.append(
        "Each cell: variant metric / base metric, averaged over "
        + (", ".join(bases) if bases else "no method (not computed)")
        + ". GB's variants are backprop hooks over the plain-gradient ('both') hook; its G and GA"
        " rows use the original hook. Bold: best per column; * marks an improvement over the base."
    )
    return t


@dataclass(frozen=True)
class Cell:
    """One table cell with its interval: ``label`` is the map (Table 3: the variant symbol)."""

    table: int
    row: str
    label: str
    metric: str
    ci: Interval


def table_cells(
    results: Results,
    tables: tuple[int, ...] | None = None,
    *,
    bootstrap: Bootstrap | None = None,
) -> list[Cell]:
    """Every computed cell of the run's tables (default: the run's own) with its interval."""
    numbers = tables or tuple(results.meta.get("config", {}).get("tables", (1, 2, 3)))
    return [
        Cell(t.number, r.title, r.key, m.key, r.ci[m.key])
        for t in build_tables(results, numbers, bootstrap=bootstrap)
        for r in t.rows
        for m in t.columns
        if m.key in r.ci
    ]
