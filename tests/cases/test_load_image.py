"""``explain`` feeds the model exactly the pixels ``run`` scores: for every case whose samples are
files, the input of ``absgrad explain FILE`` equals the case's sample of that file, bit for bit.

Each case's data is faked in its real layout with photos of odd, non-square sizes (so a crop and
a stretch, or two resize rules, cannot agree by accident); the case's network is swapped for a
small model that records its inputs, so no weights are needed.
"""

from __future__ import annotations

import csv
import shutil
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from absgrad.cases import CASES, get_case
from absgrad.cli import main

SIZES = [(301, 217), (190, 263)]  # (w, h) of the fake photos


class Recorder(nn.Module):
    """A tiny classifier with ``k`` classes that keeps every input it is called with."""

    def __init__(self, k: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, k)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.fc(self.conv(x).relu().mean((2, 3)))


def _photo(path, i: int) -> None:
    w, h = SIZES[i % len(SIZES)]
    rng = np.random.default_rng(i)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _imagenet_s(root):
    for i, (wnid, name) in enumerate([("n01440764", "a"), ("n01443537", "b")]):
        _photo(root / "validation" / wnid / f"{name}.JPEG", i)
        w, h = SIZES[i % len(SIZES)]
        ids = np.zeros((h, w, 3), dtype=np.uint8)
        ids[h // 3 :, : w // 2, 0] = 7
        (root / "validation-segmentation" / wnid).mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids).save(root / "validation-segmentation" / wnid / f"{name}.png")
    return {}


def _isic(root):
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_name", "diagnosis"])
        for i, diag in enumerate(["nevus", "melanoma"]):
            w.writerow([f"ISIC_{i}", diag])
            _photo(root / "train" / f"ISIC_{i}.jpg", i)
    return {}


def _places365(root):
    lines = [f"/c/category_{i} {i}" for i in range(365)]
    (root / "categories_places365.txt").write_text("\n".join(lines) + "\n")
    names = [f"Places365_val_0000000{i}.jpg" for i in (1, 2)]
    (root / "places365_val.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    for i, n in enumerate(names):
        _photo(root / "val_256" / n, i)
    return {}


FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    """
)


def _folder(root):
    for i, c in enumerate(["cat", "dog"]):
        _photo(root / c / f"{c}.png", i)
    factory = root.parent / "net.py"
    factory.write_text(FACTORY)
    # the user's preprocessing options, the same for run and for explain
    return {"model": f"{factory}:net", "size": "40x56", "resize": "48", "norm": "0.5"}


FAKE = {"imagenet-s": _imagenet_s, "isic": _isic, "places365": _places365, "folder": _folder}
FROM_FILES = ["imagenet-sample", *FAKE]


def test_every_case_whose_samples_are_files_is_covered():
    generated = {"demo", "synthetic"}  # samples drawn or rendered in memory, not read from files
    assert set(FROM_FILES) == set(CASES) - generated


@pytest.fixture
def case_data(request, tmp_path):
    """``(case name, data folder, folder-case options)`` of the case named by the parameter."""
    name = request.param
    if name == "imagenet-sample":
        shared = request.getfixturevalue("imagenet_sample_dir")
        root = tmp_path / "sample"
        root.mkdir()
        rows = (shared / "labels.csv").read_text().splitlines()[:3]  # header and two photos
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
        for row in rows[1:]:
            shutil.copy(shared / row.split(",")[0], root)
        return name, root, {}
    root = tmp_path / name
    root.mkdir()
    return name, root, FAKE[name](root)


@pytest.mark.parametrize("case_data", FROM_FILES, indirect=True)
def test_explain_feeds_the_model_the_pixels_of_the_cases_samples(case_data, tmp_path, monkeypatch):
    name, data, options = case_data
    case = get_case(name, data=data, **options)
    samples = case.samples()
    assert len(samples) == 2
    recorder = Recorder(case.num_classes)
    monkeypatch.setattr(type(case), "build_model", lambda self, device="cpu": recorder)
    for i, record in enumerate(samples.records):
        recorder.seen.clear()
        argv = ["explain", str(record.path), "--method", "vg", "--out", str(tmp_path / "m.png")]
        if name == "folder":
            argv += ["--model", options["model"]]
            argv += [f"--{k}={v}" for k, v in options.items() if k != "model"]
        else:
            argv += ["--model", case.name, "--data", str(data)]
        assert main(argv) == 0
        expect = case.normalize(samples[i].image[None])
        assert recorder.seen, "explain did not call the model"
        got = recorder.seen[0]
        assert got.shape == expect.shape == (1, 3, *case.image_size)
        assert torch.equal(got, expect), f"{case.name}: explain's input differs for {record.path}"
