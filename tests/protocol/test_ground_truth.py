"""An image whose ground-truth mask is empty has no ground truth: it is left out of the mask
metrics (with a warning and a count in the report), never scored against an empty mask and
averaged in."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from absgrad.report.results import load_results
from support.runs import cli


@pytest.fixture(scope="module")
def run_with_an_empty_mask(tmp_path_factory):
    root = tmp_path_factory.mktemp("gt")
    rng = np.random.default_rng(1)
    for c in ("ant", "bee"):
        for i in range(2):
            (root / "data" / c).mkdir(parents=True, exist_ok=True)
            (root / "masks" / c).mkdir(parents=True, exist_ok=True)
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "data" / c / f"{c}{i}.png")
            m = np.zeros((32, 32), np.uint8)
            if (c, i) != ("ant", 1):  # ant/ant1: an all-zero mask
                m[6:26, 4 + 4 * i : 28] = 1
            Image.fromarray(m).save(root / "masks" / c / f"{c}{i}.png")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", num_classes=2).state_dict(), root / "w.pth")
    out = root / "run"
    args = [
        "run", "--data", str(root / "data"), "--masks", str(root / "masks"),
        "--model", "timm:test_resnet", "--weights", str(root / "w.pth"), "--size", "32",
        "--no-select", "--n-samples", "2", "--batch-size", "2", "--methods", "vg,sg",
        "--metrics", "lc_dice,mae,pointing_game,rcap", "--quiet", "--out", str(out),
    ]  # fmt: skip
    proc = cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_the_empty_mask_is_left_out_with_a_warning(run_with_an_empty_mask):
    out, proc = run_with_an_empty_mask
    assert "1 image(s) have an empty ground-truth mask (ant/ant1)" in proc.stderr
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ant1 = {r["metric"] for r in rows if r["image_id"] == "ant/ant1" and r["map"] == "vg"}
    others = {r["metric"] for r in rows if r["image_id"] == "bee/bee0" and r["map"] == "vg"}
    assert ant1 == {"rcap"} and others == {"lc_dice", "mae", "pointing_game", "rcap"}
    report = (out / "report.html").read_text()
    assert "1 image(s) with an empty mask left out of Lc-dce, MAE, Pointing" in report


def test_the_tables_average_the_images_with_ground_truth_only(run_with_an_empty_mask):
    out, _ = run_with_an_empty_mask
    res = load_results(out)
    stored = {}
    for p in sorted((out / "units").glob("*.json")):
        rec = json.loads(p.read_text())
        if "vg" in rec["scores"]:  # the units of vg's sampler group
            for image_id, v in zip(rec["image_ids"], rec["scores"]["vg"]["mae"], strict=True):
                stored[image_id] = v
    assert stored["ant/ant1"] is None and sum(v is not None for v in stored.values()) == 3
    expected = np.mean([v for v in stored.values() if v is not None])
    assert res.value("vg", "mae") == pytest.approx(expected, abs=1e-12)
    ids, values = res.scored("vg", "mae")
    assert "ant/ant1" not in ids and len(values) == 3
    assert res.n_missing("mae") == 1 and res.n_missing("rcap") == 0
    paired = res.paired(["vg", "sg"], "mae")
    assert paired is not None and len(paired[0]) == 3
