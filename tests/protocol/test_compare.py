"""`absgrad compare`: two runs side by side, paired over shared images or unpaired."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
from support.runs import cli

from absgrad.errors import AbsgradError
from absgrad.report.compare import compare_results, comparison_html, comparison_markdown
from absgrad.report.results import Results, load_results


def fake(values: dict[str, np.ndarray], ids: list[str]) -> Results:
    res = Results(meta={"maps": {lb: {"title": lb.upper()} for lb in values}}, metrics=("rcap",))
    for lb, v in values.items():
        res.per_image[lb] = {"rcap": np.asarray(v, dtype=float)}
        res.image_ids[lb] = list(ids)
    return res


def test_unpaired_when_the_runs_share_no_image():
    rng = np.random.default_rng(0)
    a = fake({"gag-85": rng.normal(0.4, 0.05, 60)}, [f"a{i}" for i in range(60)])
    b = fake({"gag-85": rng.normal(0.5, 0.05, 50), "sg": np.ones(50)}, [f"b{i}" for i in range(50)])
    c = compare_results(a, b, n_resamples=3000)
    (cell,) = c.cells
    assert not cell.paired and cell.p_value is None and c.n_common == 0 and c.only_b == ["sg"]
    va, vb = a.per_image["gag-85"]["rcap"], b.per_image["gag-85"]["rcap"]
    assert cell.diff.value == pytest.approx(vb.mean() - va.mean())
    se = np.sqrt(va.var(ddof=1) / 60 + vb.var(ddof=1) / 50)  # normal approximation
    assert cell.diff.hi - cell.diff.lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert "unpaired" in comparison_markdown(c) and "GAG-85" in comparison_html(c)


def test_paired_over_common_images_only():
    ids_a, ids_b = ["x", "y", "z", "w"], ["w", "q", "y", "x", "z"]
    a = fake({"m": np.array([0.1, 0.2, 0.3, 0.4])}, ids_a)
    b = fake({"m": np.array([0.5, 9.0, 0.25, 0.3, 0.35])}, ids_b)  # q is not in A
    (cell,) = compare_results(a, b).cells
    d = np.array([0.3 - 0.1, 0.25 - 0.2, 0.35 - 0.3, 0.5 - 0.4])  # B - A per shared image
    assert cell.paired and cell.diff.value == pytest.approx(d.mean())
    assert cell.a.value == pytest.approx(0.25) and cell.b.value == pytest.approx(0.35)
    flips = [np.mean(np.array(s) * d) for s in itertools.product((1, -1), repeat=4)]
    assert cell.p_value == pytest.approx(np.mean(np.abs(flips) >= d.mean() - 1e-12))


def test_runs_without_a_shared_map_are_refused():
    with pytest.raises(AbsgradError, match="share no map"):
        compare_results(fake({"a": np.ones(3)}, list("xyz")), fake({"b": np.ones(3)}, list("xyz")))


@pytest.mark.slow
def test_compare_cli_on_two_small_runs(synthetic_run, selection_cache, tmp_path):
    other = tmp_path / "few-samples"
    args = ["run", "--case", "synthetic", "--limit", "4", "--quiet", "--out", str(other)]
    proc = cli([*args, "--methods", "gag-85,sg", "--n-samples", "4"], selection_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "cmp"
    proc = cli(["compare", str(synthetic_run), str(other), "--out", str(out)], selection_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (out / "compare.md").read_text()
    assert "paired over the 4 images" in md and md in proc.stdout + "\n"
    assert "<table" in (out / "compare.html").read_text()
    with open(synthetic_run / "tables" / "table1.csv", newline="") as f:
        gag = next(r for r in csv.DictReader(f) if r["label"] == "gag-85")
    a, b = load_results(synthetic_run), load_results(other)
    c = compare_results(a, b)
    cell = next(x for x in c.cells if x.label == "gag-85" and x.metric == "rcap")
    assert cell.a.value == pytest.approx(float(gag["rcap"]), abs=1e-12)
    assert cell.diff.value == pytest.approx(b.value("gag-85", "rcap") - a.value("gag-85", "rcap"))
    assert f"{cell.diff.value:.4f} [{cell.diff.lo:.4f}, {cell.diff.hi:.4f}]" in md
    assert {x.label for x in c.cells} == {"gag-85", "sg"} and "gag-0" in c.only_a
