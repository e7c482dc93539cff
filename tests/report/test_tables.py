"""The report's tables: the paper's numbers, best values, Table 3's ratios, intervals, rendering."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest

from absgrad.protocol.catalogue import TABLE3_VARIANTS, table_labels
from absgrad.report.render import to_csv, to_latex, to_markdown
from absgrad.report.results import Results
from absgrad.report.tables import build_tables, paper_numbers

#: the row titles of the paper's Tables 1 and 2 -> map labels
PAPER_ROWS = {
    **{f"GAG-{p}": f"gag-{p}" for p in (0, 15, 25, 35, 45, 55, 65, 75, 85)},
    "Grad-CAM": "gradcam", "GAG": "gag-85", "VarGrad": "vargrad", "SG": "sg", "IG": "ig",
    "GB": "gb", "Guided IG": "guidedig", "BlurIG": "blurig", "VG": "vg", "SGR": "sg-r",
    "IGR": "ig-r", "GBR": "gb-r", "Guided IGR": "guidedig-r", "BlurIGR": "blurig-r",
}  # fmt: skip
PAPER_COLUMNS = [("ImageNet-S", m) for m in ("lc_dice", "mae_sqrt", "rcap", "dauc", "iauc")] + [
    (case, m) for case in ("ISIC", "Places365") for m in ("rcap", "dauc", "iauc")
]


def _paper_source_rows() -> dict[str, dict[str, list[float]]]:
    """Tables 1 and 2 read from the paper's source text: ``{table: {title: 11 numbers}}``."""
    seed = Path(__file__).resolve().parents[2].parent / "shared" / "seed"
    files = sorted(seed.glob("*.txt"))
    if not files:
        pytest.skip(f"needs the paper's source text under {seed} (absent in a fresh clone)")
    rows: dict[str, dict[str, list[float]]] = {"1": {}, "2": {}}
    for line in files[0].read_text(encoding="utf-8").splitlines():
        numbers = re.findall(r"\\rd(?:nn|bf)([0-9.]+)", line)
        title = line.split("\\rd")[0].strip()
        if len(numbers) == 11 and title in PAPER_ROWS:
            rows["1" if title.startswith("GAG-") else "2"][title] = [float(v) for v in numbers]
    return rows


def test_paper_numbers_equal_the_papers_source_text():
    tables = paper_numbers()["tables"]
    source = _paper_source_rows()
    assert len(source["1"]) == 9 and len(source["2"]) == 14
    for number, rows in source.items():
        assert list(tables[number]) == [PAPER_ROWS[t] for t in rows]
        for title, values in rows.items():
            stored = tables[number][PAPER_ROWS[title]]
            assert [stored[case][m] for case, m in PAPER_COLUMNS] == values, title
    assert list(tables["2"]) == table_labels(2)
    assert tables["3"]["GA"]["ImageNet-S"]["rcap"] == 2.86  # Table 3 holds ratios, not scores


def fake_results(values: dict[str, dict[str, float]]) -> Results:
    """Results whose dataset-level values are ``values`` (two images; flat curves)."""
    res = Results(
        meta={"maps": dict.fromkeys(values), "config": {}}, metrics=("rcap", "dauc", "iauc")
    )
    for label, v in values.items():
        res.per_image[label] = {
            "rcap": np.array([v["rcap"]] * 2),
            "dauc": np.zeros(2),
            "iauc": np.zeros(2),
            "deletion": np.full((2, 10), v["dauc"] / 0.9),  # a flat curve's area is 0.9 x its level
            "insertion": np.full((2, 10), v["iauc"] / 0.9),
        }
        res.image_ids[label] = ["a", "b"]
    return res


def test_best_values_are_marked_by_direction():
    vals = {lb: {"rcap": 0.1, "dauc": 0.5, "iauc": 0.5} for lb in table_labels(2)}
    vals["gradcam"] = {"rcap": 0.9, "dauc": 0.01, "iauc": 0.99}  # reference row: never "best"
    vals["gag-85"]["rcap"] = 0.4
    vals["ig"]["dauc"] = 0.2
    vals["vg"]["iauc"] = 0.7
    vals["ig-r"]["dauc"] = 0.1  # reversed maps are a check, never "best"
    (t2,) = build_tables(fake_results(vals), (2,))
    cols = {m.key: m for m in t2.columns}
    rows = [r.key for r in t2.rows]
    assert {rows[i] for i in t2.best(cols["rcap"])} == {"gag-85"}
    assert {rows[i] for i in t2.best(cols["dauc"])} == {"ig"}
    assert {rows[i] for i in t2.best(cols["iauc"])} == {"vg"}
    md = to_markdown(t2)
    assert "| GAG | **0.4000** ± 0.0000 |" in md and "| Grad-CAM | 0.9000 ± 0.0000 |" in md
    assert "\\textbf{0.2000}" in to_latex(t2)
    assert t2.rows[1].values["dauc"] == pytest.approx(0.5)


def test_table3_divides_each_variant_by_its_base_and_averages():
    labels = table_labels(3)
    vals = {lb: {"rcap": 0.2, "dauc": 0.4, "iauc": 0.5} for lb in labels}
    for _base, variants in TABLE3_VARIANTS.values():
        vals[variants["A"]] = {"rcap": 0.4, "dauc": 0.2, "iauc": 0.5}  # A: 2x RCAP, 0.5x DAUC
    vals["sg-neg"]["rcap"] = 0.6  # one method's "-" is 3x, the other four 1x: mean 1.4
    (t3,) = build_tables(fake_results(vals), (3,))
    rows = {r.key: r.values for r in t3.rows}
    assert rows["A"]["rcap"] == pytest.approx(2.0) and rows["A"]["dauc"] == pytest.approx(0.5)
    assert rows["-"]["rcap"] == pytest.approx(1.4)
    assert rows["+"]["iauc"] == pytest.approx(1.0)
    cols = {m.key: m for m in t3.columns}
    assert t3.improves(t3.rows[2], cols["dauc"]) and not t3.improves(t3.rows[0], cols["iauc"])
    assert "**2.00**\\*" in to_markdown(t3)


def test_csv_round_trips_the_values_and_shows_paper_numbers():
    vals = {lb: {"rcap": 1 / 3, "dauc": 0.25, "iauc": 0.5} for lb in table_labels(1)}
    (t1,) = build_tables(fake_results(vals), (1,), compare="ISIC")
    rows = list(csv.DictReader(io.StringIO(to_csv(t1))))
    assert float(rows[0]["rcap"]) == 1 / 3
    assert float(rows[-1]["paper_rcap"]) == 0.571426 and rows[-1]["label"] == "gag-85"


def test_missing_maps_show_as_dashes_and_a_note():
    vals = {"gag-0": {"rcap": 0.1, "dauc": 0.1, "iauc": 0.1}}
    (t1,) = build_tables(fake_results(vals), (1,))
    assert "| GAG-85 | — | — | — |" in to_markdown(t1)
    assert any("Not computed" in n for n in t1.notes)


def _varied_results(labels, n=24, seed=0):
    """Results with random per-image RCAP and flat curves (DAUC/IAUC vary per image)."""
    rng = np.random.default_rng(seed)
    res = Results(meta={"maps": dict.fromkeys(labels), "config": {}}, metrics=("rcap", "dauc"))
    ids = [f"img{i}" for i in range(n)]
    for lb in labels:
        level = rng.uniform(0.1, 0.9, size=(n, 1))
        res.per_image[lb] = {
            "rcap": rng.uniform(0.05, 0.6, size=n),
            "dauc": np.zeros(n),
            "deletion": level * np.linspace(1, 0.2, 10)[None, :],
        }
        res.image_ids[lb] = ids
    return res


def test_cells_carry_bootstrap_intervals_in_every_format():
    from absgrad.report.render import to_html
    from absgrad.report.tables import Bootstrap

    res = _varied_results(table_labels(1))
    (t1,) = build_tables(res, (1,), bootstrap=Bootstrap(n_resamples=4000, seed=3))
    row = t1.rows[0]
    per_image = res.per_image["gag-0"]["rcap"]
    ci = row.ci["rcap"]
    assert ci.value == row.values["rcap"] == pytest.approx(per_image.mean())
    # an independent loop bootstrap of the same cell
    rng = np.random.default_rng(99)
    means = [per_image[rng.integers(0, 24, 24)].mean() for _ in range(4000)]
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert ci.lo == pytest.approx(lo, abs=0.1 * (hi - lo)) and ci.hi == pytest.approx(
        hi, abs=0.1 * (hi - lo)
    )
    csv_row = next(csv.DictReader(io.StringIO(to_csv(t1))))
    assert float(csv_row["rcap_lo"]) == ci.lo and float(csv_row["rcap_hi"]) == ci.hi
    assert float(csv_row["dauc_lo"]) < float(csv_row["dauc"]) < float(csv_row["dauc_hi"])
    half = f"{(ci.hi - ci.lo) / 2:.4f}"
    assert f"{ci.value:.4f} ± {half}" in to_markdown(t1)
    assert f"{ci.value:.4f} $\\pm$ {half}" in to_latex(t1)
    assert f"[{ci.lo:.4f}, {ci.hi:.4f}]" in to_html(t1)


def test_table3_intervals_bootstrap_the_ratio_of_means_over_paired_images():
    from absgrad.report.tables import Bootstrap

    labels = table_labels(3)
    res = _varied_results(labels, n=20, seed=1)
    (t3,) = build_tables(res, (3,), bootstrap=Bootstrap(n_resamples=4000))
    cell = {r.key: r for r in t3.rows}["A"]
    pairs = [(base, variants["A"]) for base, variants in TABLE3_VARIANTS.values()]
    r = {lb: res.per_image[lb]["rcap"] for lb in labels}

    def stat(idx):
        return np.mean([r[v][idx].mean() / r[b][idx].mean() for b, v in pairs])

    assert cell.values["rcap"] == pytest.approx(stat(np.arange(20)))
    rng = np.random.default_rng(5)
    boots = [stat(rng.integers(0, 20, 20)) for _ in range(3000)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    ci = cell.ci["rcap"]
    assert ci.lo == pytest.approx(lo, abs=0.1 * (hi - lo))
    assert ci.hi == pytest.approx(hi, abs=0.1 * (hi - lo))


def test_table_cells_lists_every_computed_cell_with_its_interval():
    from absgrad.report.tables import Bootstrap, table_cells

    res = _varied_results(["gag-0", "gag-85", "sg"], n=10)
    cells = table_cells(res, (1, 2), bootstrap=Bootstrap(n_resamples=200))
    got = {(c.table, c.label, c.metric) for c in cells}
    assert got == {
        (t, lb, m)
        for t, lb in ((1, "gag-0"), (1, "gag-85"), (2, "gag-85"), (2, "sg"))
        for m in ("rcap", "dauc")
    }
    sg = next(c for c in cells if c.label == "sg" and c.metric == "rcap")
    assert sg.ci.value == pytest.approx(res.per_image["sg"]["rcap"].mean()) and sg.ci.n == 10
