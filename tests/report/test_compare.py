"""`absgrad compare`: two runs side by side, paired over shared images or unpaired."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from absgrad.errors import AbsgradError
from absgrad.report.compare import compare_results, comparison_html, comparison_markdown
from absgrad.report.results import Results, load_results
from support.runs import cli


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
def test_compare_cli_on_two_small_runs(synthetic_run, tmp_path):
    other = tmp_path / "few-samples"
    args = ["run", "--case", "synthetic", "--limit", "4", "--quiet", "--out", str(other)]
    proc = cli([*args, "--methods", "gag-85,sg", "--n-samples", "4"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "cmp"
    proc = cli(["compare", str(synthetic_run), str(other), "--out", str(out)])
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


def _meta(
    model: str | None = None,
    weights_sha: str | None = None,
    ids=("x", "y", "z"),
    files: dict | None = None,
    size=(224, 224),
) -> dict:
    """A run.json-like record of the set-up (what ``runner`` writes)."""
    return {
        "config": {
            "case": "folder",
            "model": model,
            "weights": "w.pth",
            "weights_sha": weights_sha,
        },
        "case": {
            "name": "folder",
            "image_size": list(size),
            "normalization": [[0.5] * 3, [0.5] * 3],
            "data": "/data/photos",
        },
        "data": {"digest": "d1", "images": files or {i: [0, 100, 1] for i in ids}},
        "images": {"ids": list(ids)},
    }


def with_meta(res: Results, meta: dict) -> Results:
    res.meta.update(meta)
    return res


def test_runs_of_different_models_are_refused_unless_asked():
    ids = ["x", "y", "z"]
    a = with_meta(fake({"m": np.array([0.1, 0.2, 0.3])}, ids), _meta("timm:resnet18", "aa"))
    b = with_meta(fake({"m": np.array([0.2, 0.3, 0.5])}, ids), _meta("timm:vit_tiny", "bb"))
    with pytest.raises(AbsgradError, match="different models") as err:
        compare_results(a, b)
    assert "timm:resnet18 vs timm:vit_tiny" in str(err.value) and "--across-models" in str(
        err.value
    )
    c = compare_results(a, b, across_models=True)
    md = comparison_markdown(c)
    top = md.splitlines()[2]  # the first note under the title says what differs
    assert top.startswith("_Set-ups differ:") and "model: A timm:resnet18" in top
    assert "weights" in top and "preprocessing" not in top


def test_the_top_of_a_comparison_says_what_differs_or_what_is_shared():
    ids = ["x", "y", "z"]
    a = with_meta(fake({"m": np.array([0.1, 0.2, 0.3])}, ids), _meta("timm:resnet18", "aa"))
    b = with_meta(
        fake({"m": np.array([0.2, 0.3, 0.5])}, ids), _meta("timm:resnet18", "aa", size=(256, 256))
    )
    diffs = compare_results(a, b).differences
    assert [d.what for d in diffs] == ["preprocessing"]
    assert "224x224" in diffs[0].a and "256x256" in diffs[0].b
    same = comparison_markdown(compare_results(a, a))
    assert "_Same set-up: case folder; model timm:resnet18" in same


def test_an_id_naming_different_files_is_not_paired():
    ids = ["x", "y", "z"]
    files_b = {"x": [0, 100, 1], "y": [0, 100, 1], "z": [0, 999, 7]}  # z: another file
    a = with_meta(fake({"m": np.array([0.1, 0.2, 0.3])}, ids), _meta("timm:resnet18", "aa"))
    b = with_meta(
        fake({"m": np.array([0.2, 0.3, 0.9])}, ids),
        _meta("timm:resnet18", "aa", files=files_b),
    )
    c = compare_results(a, b)
    (cell,) = c.cells
    assert cell.paired and c.n_common == 2 and c.n_unpaired_ids == 1
    assert cell.diff.value == pytest.approx(((0.2 - 0.1) + (0.3 - 0.2)) / 2)
    assert "name different files" in comparison_markdown(c)


def test_compare_out_at_an_existing_file_is_a_clear_error(tmp_path):
    from absgrad.report.compare import compare_runs

    target = tmp_path / "compare.md"
    target.write_text("x")
    with pytest.raises(AbsgradError, match="is a file"):
        compare_runs(tmp_path / "a", tmp_path / "b", target)
