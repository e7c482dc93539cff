"""Models named by the user through the command line with the network unreachable (the closing
checks of published weights, at test size): a saved Hugging Face folder runs and explains with
its own preprocessing and class names; a published model that is not cached fails in one line
naming the cache and writes nothing; ``--weights random`` runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.cli_errors import assert_user_error
from support.hub import save_tiny
from support.offline import offline_cli

pytest.importorskip("transformers")
#: Small settings: three maps (Grad-CAM and guided backprop among them), RCAP only.
FAST = ["--n-samples", "2", "--batch-size", "2", "--methods", "gag-85,gradcam,gb"]
FAST += ["--metrics", "rcap", "--tables", "1", "--quiet"]


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> Path:
    """Integer class folders (labels: the model's output indices), a photo, a tiny saved ViT
    confident in class 0 ("ant"), so the selection rule keeps its images."""
    root = tmp_path_factory.mktemp("named")
    rng = np.random.default_rng(0)
    (root / "data" / "0").mkdir(parents=True)
    for i in range(3):
        img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "data" / "0" / f"img{i}.png")
    save_tiny("vit", root / "vit", bias=8.0)
    return root


def _caches(tmp_path: Path) -> dict[str, str]:
    return {"HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}


def test_run_a_saved_hugging_face_folder_offline(named, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--data", str(named / "data"), "--model", f"hf:{named / 'vit'}", "--limit", "2"]
    proc = offline_cli([*args, *FAST, "--out", str(out)], **_caches(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and len(meta["images"]["ids"]) == 2
    folder = meta["case"]["folder"]
    assert folder["defaults_from"] == f"the image processor of hf:{named / 'vit'}"
    assert folder["resize"] == "stretch" and folder["normalization"] == "0.5,0.5,0.5,0.5,0.5,0.5"
    assert meta["config"]["weights"] == "pretrained" and meta["config"]["weights_sha"]
    assert meta["case"]["class_names"] == {"0": "ant"}  # the model's id2label
    assert meta["maps"]["gradcam"]["params"]["layer"] is None  # the default rule found one
    page = (out / "gallery" / "page-001.html").read_text()
    assert "class 0 (ant)" in page
    assert meta["model"]["digest"] and meta["model"]["tensors"] > 0


def test_explain_with_a_saved_hugging_face_folder_offline(named, tmp_path):
    photo = next((named / "data" / "0").iterdir())
    out = tmp_path / "cam.png"
    args = ["explain", str(photo), "--model", f"hf:{named / 'vit'}", "--method", "gradcam"]
    proc = offline_cli([*args, "--out", str(out)], **_caches(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("class 0 ant (probability ")  # id2label names it
    assert out.is_file() and np.load(out.with_suffix(".npy")).shape == (32, 32)


def test_uncached_published_weights_fail_in_one_line_and_write_nothing(named, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    args = ["run", "--data", str(named / "data"), "--model", "timm:test_resnet", "--limit", "2"]
    proc = offline_cli(args, cwd=work, **_caches(tmp_path))
    line = assert_user_error(proc.returncode, proc.stderr, "timm:test_resnet", "model.safetensors")
    assert str(tmp_path / "hf" / "hub" / "models--timm--test_resnet.r160_in1k") in line
    assert "--weights FILE" in line and "--weights random" in line
    assert list(work.iterdir()) == []  # no run folder (default: ./absgrad-timm-test_resnet)
    assert not (tmp_path / "hf").exists() and not (tmp_path / "torch").exists()


def test_random_weights_run_without_the_selection_rule(named, tmp_path):
    out = tmp_path / "random"
    args = ["run", "--data", str(named / "data"), "--model", "timm:test_resnet", "--limit", "2"]
    args += ["--weights", "random", "--size", "32", "--layer", "layer3", *FAST]
    proc = offline_cli([*args, "--out", str(out)], **_caches(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["weights"] == "random" and meta["config"]["select"] is False
    assert meta["case"]["class_names"] == {}  # a random head names no class
    assert "RANDOM weights" in proc.stderr
