"""Per-image scores of a run (scores.csv) and the tables' intervals, on the synthetic e2e run."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest

from absgrad.report.results import load_results

pytestmark = pytest.mark.slow


def test_scores_csv_holds_every_map_metric_and_image(synthetic_run):
    meta = json.loads((synthetic_run / "run.json").read_text())
    with open(synthetic_run / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image_id", "label", "map", "metric", "value"]
    ids = meta["images"]["ids"]
    seen = defaultdict(dict)
    for r in rows:
        seen[(r["map"], r["metric"])][r["image_id"]] = float(r["value"])
        assert r["label"].isdigit()  # the target class
    assert set(seen) == {(lb, m) for lb in meta["maps"] for m in meta["metrics"]}
    assert all(list(v) == ids for v in seen.values())


def test_table_values_are_the_means_of_scores_csv_and_lie_in_their_interval(synthetic_run):
    with open(synthetic_run / "scores.csv", newline="") as f:
        per = defaultdict(list)
        for r in csv.DictReader(f):
            per[(r["map"], r["metric"])].append(float(r["value"]))
    res = load_results(synthetic_run)
    from absgrad.metrics import auc

    curve = res.mean_curve("gag-85", "deletion")
    assert np.mean(per[("gag-85", "dauc")]) == pytest.approx(float(auc(curve)), abs=1e-12)
    for n in (1, 2):
        with open(synthetic_run / "tables" / f"table{n}.csv", newline="") as f:
            for row in csv.DictReader(f):
                for m in ("rcap", "dauc", "iauc", "lc_dice"):
                    v = float(row[m])
                    assert v == pytest.approx(np.mean(per[(row["label"], m)]), abs=1e-12)
                    assert float(row[f"{m}_lo"]) <= v + 1e-12 <= float(row[f"{m}_hi"]) + 2e-12
    t3 = (synthetic_run / "tables" / "table3.csv").read_text().splitlines()[0].split(",")
    assert {"rcap_lo", "rcap_hi"} <= set(t3)


def test_claims_are_tested_and_report_their_evidence(synthetic_run):
    text = (synthetic_run / "claims.md").read_text()
    # 4 images: no claim can be decided, and each says on how many images it was tested
    assert text.count("inconclusive (n = 4 images)") == 4
    assert "Holm" in text and "| 1 |" in text  # the RCAP ranking of Table 2
    md = (synthetic_run / "tables" / "tables.md").read_text()
    assert " ± " in md


def test_parquet_matches_the_csv_when_pyarrow_is_installed(synthetic_run):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is optional and not installed")
    table = pq.read_table(synthetic_run / "scores.parquet").to_pylist()
    with open(synthetic_run / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert table[0]["value"] == float(rows[0]["value"]) and table[0]["map"] == rows[0]["map"]
