"""Which maps each of Tables 1-3 needs, from the catalogue in :mod:`absgrad.protocol.paper`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from absgrad.errors import AbsgradError
from absgrad.protocol.paper import (
    ABLATION_P,
    TABLE1,
    TABLE2,
    TABLE3_TITLE,
    TABLE3_VARIANTS,
    TABLES,
    VARIANTS,
    MapSpec,
    Sampling,
    TableDef,
    gag_label,
    paper_maps,
)

__all__ = [
    "ABLATION_P",
    "TABLE1",
    "TABLE2",
    "TABLE3_TITLE",
    "TABLE3_VARIANTS",
    "TABLES",
    "VARIANTS",
    "MapSpec",
    "Sampling",
    "TableDef",
    "gag_label",
    "paper_maps",
    "table_labels",
    "with_sources",
]


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
