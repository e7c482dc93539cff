"""`absgrad report` on a finished run: the same tables again, the paper's numbers beside them."""

from __future__ import annotations

import csv

import pytest

from support.runs import cli, copy_run


def read_csv(path):
    with open(path, newline="") as f:
        return {row["label"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_report_command_rebuilds_the_same_tables(synthetic_run, tmp_path):
    run = copy_run(synthetic_run, tmp_path)
    (run / "tables" / "table2.csv").unlink()
    proc = cli(["report", str(run)])
    assert proc.returncode == 0, proc.stderr
    assert (run / "tables" / "table2.csv").read_text() == (
        synthetic_run / "tables" / "table2.csv"
    ).read_text()
    assert "report.html" in proc.stdout
    # the printed tables carry intervals and the printed claims their tested status
    assert " ± " in proc.stdout and proc.stdout.count("inconclusive (n = 4 images)") == 4


@pytest.mark.slow
def test_compare_paper_shows_the_papers_numbers(synthetic_run, tmp_path):
    run = copy_run(synthetic_run, tmp_path)
    proc = cli(["report", str(run), "--compare-paper", "imagenet-s"])
    assert proc.returncode == 0, proc.stderr
    t1 = read_csv(run / "tables" / "table1.csv")
    assert float(t1["gag-85"]["paper_rcap"]) == pytest.approx(0.437721)
    assert float(t1["gag-85"]["paper_mae_sqrt"]) == pytest.approx(0.474767)
    assert "paper_mae" not in t1["gag-85"]  # the paper's MAE is the sqrt one
    assert "paper_pointing_game" not in t1["gag-85"]


def test_the_papers_numbers_are_shown_by_default_for_the_papers_cases():
    from absgrad.report.build import resolve_compare

    assert resolve_compare("imagenet-s", None) == "ImageNet-S"
    assert resolve_compare("synthetic", None) is None
    assert resolve_compare("imagenet-s", False) is None
    assert resolve_compare("synthetic", "isic") == "ISIC"
    with pytest.raises(ValueError, match="no numbers for case"):
        resolve_compare("synthetic", True)
