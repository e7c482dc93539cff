"""isic: SIIM-ISIC CSV + JPEG folder, the 9 diagnosis classes, enet.*/myfc.* checkpoints."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from absgrad.cases import get_case
from absgrad.cases.isic import DIAGNOSES, diagnosis_index
from absgrad.models import CheckpointError, IsicNet

SMALL = "tf_efficientnet_b0"  # same key layout as b4 under enet.*, 5x fewer parameters

ROWS = [  # image_name, diagnosis as the 2020 and the 2019 train.csv spell them, fold
    ("ISIC_0015719", "nevus", 0),
    ("ISIC_0052212", "melanoma", 1),
    ("ISIC_0068279", "seborrheic keratosis", 0),
    ("ISIC_0074268", "cafe-au-lait macule", 0),
    ("ISIC_0000013", "BCC", 1),
    ("ISIC_0000019", "AK", 0),
]


def _write_isic(
    root, rows=ROWS, columns=("image_name", "patient_id", "diagnosis", "target", "fold")
):
    (root / "train").mkdir(parents=True)
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for name, diag, fold in rows:
            values = {
                "image_name": name,
                "patient_id": "IP_1",
                "diagnosis": diag,
                "target": int(diag == "melanoma"),
                "fold": fold,
            }
            w.writerow([values[c] for c in columns])
    rng = np.random.default_rng(0)
    for name, _, _ in rows:
        arr = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "train" / f"{name}.jpg")
    return root


def test_diagnosis_names_map_to_the_nine_classes() -> None:
    assert DIAGNOSES == ("AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC", "unknown")
    assert diagnosis_index("nevus") == diagnosis_index("NV") == 5
    assert diagnosis_index("melanoma") == 4
    for name in (
        "seborrheic keratosis",
        "lichenoid keratosis",
        "solar lentigo",
        "lentigo NOS",
        "bkl",
    ):
        assert diagnosis_index(name) == 2
    assert diagnosis_index("atypical melanocytic proliferation") == 8
    assert diagnosis_index("akiec") == 0
    with pytest.raises(ValueError, match="unknown ISIC diagnosis 'wart'"):
        diagnosis_index("wart")


def test_loader_reads_csv_and_jpegs_at_448(tmp_path) -> None:
    case = get_case("isic", data=_write_isic(tmp_path))
    ds = case.samples()
    assert ds.ids == [r[0] for r in ROWS]
    assert [r.label for r in ds.records] == [5, 4, 2, 8, 1, 0]
    s = ds[1]
    assert s.image.shape == (3, 448, 448) and s.mask is None and s.label == 4
    folds = get_case("isic", data=tmp_path, fold=1).samples()
    assert folds.ids == ["ISIC_0052212", "ISIC_0000013"]
    assert case.reversal["gb"] == (0.005, 0.10) and case.reversal["sg"] == (0.02, 0.30)


def test_csv_problems_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ISIC folder not found .*train.csv"):
        get_case("isic", data=tmp_path / "absent")
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="ISIC label file not found at .*train.csv"):
        get_case("isic", data=tmp_path / "a")
    binary = _write_isic(tmp_path / "b", columns=("image_name", "target"))
    with pytest.raises(ValueError, match="target is binary"):
        get_case("isic", data=binary).samples()
    bad = _write_isic(tmp_path / "c", rows=[("ISIC_1", "wart", 0)])
    with pytest.raises(ValueError, match="image ISIC_1: unknown ISIC diagnosis 'wart'"):
        get_case("isic", data=bad).samples()
    with pytest.raises(ValueError, match="no fold column"):
        get_case("isic", data=binary, fold=0).samples()


def test_missing_and_corrupt_images_are_skipped(tmp_path) -> None:
    root = _write_isic(tmp_path)
    (root / "train" / "ISIC_0015719.jpg").unlink()
    (root / "train" / "ISIC_0052212.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.warns(UserWarning) as rec:
        ds = get_case("isic", data=root).samples()
    messages = [str(w.message) for w in rec]
    assert any("ISIC_0015719.jpg: file not found" in m for m in messages)
    assert any("ISIC_0052212.jpg: not a readable image" in m for m in messages)
    assert len(ds) == 4 and ds.num_skipped == 2
    assert ds.skipped[1][0].endswith("ISIC_0052212.jpg")


def test_winning_solution_checkpoint_layout_loads(tmp_path) -> None:
    root = _write_isic(tmp_path / "data")
    torch.manual_seed(0)
    ref = IsicNet(SMALL, 9).eval()
    sd = ref.state_dict()
    assert any(k.startswith("enet.conv_stem") for k in sd) and "myfc.weight" in sd
    # saved from nn.DataParallel: every key under module.
    path = tmp_path / "b0_fold0.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    case = get_case("isic", data=root, weights=path, arch=SMALL)
    model = case.build_model()
    # the network is fully convolutional: a small input checks the weights as well as 448 px
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = model(x)
        assert out.shape == (2, 9)
        assert torch.allclose(out, ref(x), atol=1e-5)
    assert case.gradcam_layer in dict(model.named_modules())

    # a plain timm layout (classifier.* head) is mapped onto enet.*/myfc.*
    plain = {
        k[5:] if k.startswith("enet.") else k.replace("myfc.", "classifier."): v
        for k, v in sd.items()
    }
    torch.save({"state_dict": plain}, tmp_path / "plain.pth")
    model2 = get_case("isic", data=root, weights=tmp_path / "plain.pth", arch=SMALL).build_model()
    with torch.inference_mode():
        assert torch.allclose(model2(x), out, atol=1e-5)


def test_real_b4_layout_and_checkpoint_errors(tmp_path) -> None:
    b4 = IsicNet("tf_efficientnet_b4", 9)
    assert b4.myfc.weight.shape == (9, 1792)
    assert "enet.blocks.6.1.conv_pwl.weight" in b4.state_dict()
    root = _write_isic(tmp_path / "data")
    with pytest.raises(FileNotFoundError, match="needs a checkpoint"):
        get_case("isic", data=root).build_model()
    torch.manual_seed(0)
    sd = IsicNet(SMALL, 8).state_dict()
    torch.save(sd, tmp_path / "eight.pth")
    with pytest.raises(CheckpointError, match=r"myfc.weight has shape \(8, 1280\).*9 diagnosis"):
        get_case("isic", data=root, weights=tmp_path / "eight.pth", arch=SMALL).build_model()
    sd9 = IsicNet(SMALL, 9).state_dict()
    del sd9["enet.conv_head.weight"]
    sd9["enet.extra.weight"] = torch.zeros(1)
    torch.save(sd9, tmp_path / "partial.pth")
    with pytest.raises(
        CheckpointError, match="missing keys: enet.conv_head.weight.*unexpected keys: enet.extra"
    ):
        get_case("isic", data=root, weights=tmp_path / "partial.pth", arch=SMALL).build_model()
