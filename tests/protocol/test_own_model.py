"""Your data and model through the protocol: `absgrad run --data DIR --model SPEC` to the three
tables, resumed, the same run from YAML, under the Ray executor, what the config hash covers,
class names from the user's vocabulary, and no resume with a model that changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image

from absgrad.protocol.config import ConfigError, make_config
from support.cli_errors import assert_user_error
from support.runs import cli, cli_env, copy_run, unit_scores

SETTINGS = ["--size", "32", "--no-select", "--limit", "2", "--n-samples", "2", "--batch-size", "2"]
SETTINGS += ["--layer", "layer3"]  # Grad-CAM: layer4 is 1 x 1 at 32 px
ARGS = ["--model", "timm:test_resnet", *SETTINGS, "--quiet"]


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Path:
    """Class folders of generated PNGs, binary masks, a 3-class test_resnet checkpoint."""
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for c in ("ant", "bee", "cow"):
        for i in range(2):
            (root / "data" / c).mkdir(parents=True, exist_ok=True)
            (root / "masks" / c).mkdir(parents=True, exist_ok=True)
            img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "data" / c / f"{c}{i}.jpg", quality=95)
            m = np.zeros((40, 48), np.uint8)
            m[8 + 4 * i : 30, 10:40] = 1
            Image.fromarray(m).save(root / "masks" / c / f"{c}{i}.png")
    torch.manual_seed(0)
    sd = timm.create_model("test_resnet", num_classes=3).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, root / "w.pth")
    return root


def _own_args(own: Path) -> list[str]:
    return [
        "--data",
        str(own / "data"),
        "--weights",
        str(own / "w.pth"),
        "--masks",
        str(own / "masks"),
    ]


@pytest.fixture(scope="module")
def own_run(own) -> Path:
    """The run of ``own``; shared by this module's tests, which write only into copies of it."""
    out = own / "run"
    proc = cli(["run", *_own_args(own), *ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_to_the_three_tables(own_run):
    meta = json.loads((own_run / "run.json").read_text())
    assert meta["status"] == "complete" and meta["done_units"] == meta["n_units"]
    assert meta["case"]["name"] == "folder" and meta["case"]["has_masks"]
    assert meta["case"]["num_classes"] == 3 and meta["case"]["image_size"] == [32, 32]
    assert meta["images"]["ids"] == ["ant/ant0", "ant/ant1"]
    assert meta["config"]["model"] == "timm:test_resnet"
    assert meta["maps"]["gradcam"]["params"]["layer"] == "layer3"
    for t in (1, 2, 3):
        assert (own_run / "tables" / f"table{t}.csv").is_file()
    tables = (own_run / "tables" / "tables.md").read_text()
    assert "Table 3" in tables and "Pointing" in tables  # a mask metric: the masks were used
    assert (own_run / "report.html").is_file()


def test_rerun_resumes_and_computes_nothing(own_run, own, tmp_path):
    run = copy_run(own_run, tmp_path)
    proc = cli(["run", *_own_args(own), *ARGS, "--out", str(run), "--no-report"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((run / "run.json").read_text())
    assert len(meta["sessions"]) == 2
    assert meta["sessions"][-1]["computed_units"] == 0
    assert meta["sessions"][-1]["skipped_units"] == meta["n_units"]
    # another preprocessing is another run: refused in the same folder
    proc = cli(["run", *_own_args(own), *ARGS, "--norm", "0.5", "--out", str(run)])
    assert_user_error(proc.returncode, proc.stderr, "norm")


def test_yaml_config_is_the_same_run(own, own_run, tmp_path):
    cfg = {
        "case": "folder",
        "data": str(own / "data"),
        "model": "timm:test_resnet",
        "weights": str(own / "w.pth"),
        "masks": str(own / "masks"),
        "size": 32,
        "gradcam_layer": "layer3",
        "select": False,
        "limit": 2,
        "batch_size": 2,
        "sampling": {"n_samples": 2},
    }
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(cfg))
    meta = json.loads((own_run / "run.json").read_text())
    assert make_config(cfg).config_hash() == meta["config_hash"]
    run = copy_run(own_run, tmp_path)
    proc = cli(["run", "--config", str(tmp_path / "own.yaml"), "--out", str(run)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["sessions"][-1]["computed_units"] == 0


def test_config_hash_covers_model_weights_data_and_preprocessing(own, tmp_path):
    base = {"data": str(own / "data"), "model": "timm:test_resnet", "weights": str(own / "w.pth")}
    h = make_config(base).config_hash()
    assert make_config(base).case == "folder"
    changed = [
        {"model": "torchvision:resnet18"},
        {"size": 48},
        {"resize": "stretch"},
        {"norm": "imagenet"},
        {"masks": str(own / "masks")},
        {"classes": "imagenet"},
        {"data": str(own / "masks")},
    ]
    hashes = {make_config({**base, **c}).config_hash() for c in changed}
    assert h not in hashes and len(hashes) == len(changed)
    # the weights' content, not only their path
    w2 = tmp_path / "w.pth"
    w2.write_bytes((own / "w.pth").read_bytes())
    same = make_config({**base, "weights": str(w2)})
    assert same.weights_sha == make_config(base).weights_sha
    sd = torch.load(w2, weights_only=True)
    sd["state_dict"]["module.fc.bias"] += 1
    torch.save(sd, w2)
    assert make_config({**base, "weights": str(w2)}).weights_sha != same.weights_sha
    with pytest.raises(ConfigError, match="changed"):
        make_config(yaml.safe_load(yaml.safe_dump(same.to_dict())))
    with pytest.raises(ConfigError, match="applies to case 'folder'"):
        make_config({"case": "synthetic", "model": "timm:resnet18"})
    with pytest.raises(ConfigError, match="model spec"):
        make_config({**base, "model": "resnet18"})


def test_python_factory_file_in_a_config_runs_in_a_fresh_process(own, tmp_path):
    """A file.py:factory spec is resolved to an absolute path, so any worker process finds it."""
    (tmp_path / "net.py").write_text(
        "import timm\n\ndef build():\n    return timm.create_model('test_resnet', num_classes=3)\n"
    )
    sd = torch.load(own / "w.pth", weights_only=True)
    torch.save(sd, tmp_path / "w.pth")
    args = ["run", "--data", str(own / "data"), "--weights", str(tmp_path / "w.pth")]
    args += [*SETTINGS, "--model", "net.py:build", "--out", str(tmp_path / "o"), "--no-report"]
    args += ["--tables", "1", "--methods", "gag-85", "--metrics", "rcap"]
    proc = cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "o" / "run.json").read_text())
    assert meta["config"]["model"] == f"{tmp_path / 'net.py'}:build"
    assert meta["config"]["model_sha"] is not None


#: One map and one metric: what the runs below check needs no more.
ONE_MAP = [*SETTINGS, "--tables", "1", "--methods", "gag-85", "--metrics", "rcap"]


def test_gallery_shows_the_users_class_names(own_run):
    """Class folders ant/bee/cow: their names, not a number alone or another vocabulary."""
    page = (own_run / "gallery" / "page-001.html").read_text()
    assert "class 0 (ant)" in page
    meta = json.loads((own_run / "run.json").read_text())
    assert meta["case"]["class_names"] == {"0": "ant"}  # the run's images are two ants


def test_a_1000_output_model_on_the_users_classes_shows_the_users_names(own, tmp_path):
    """An ImageNet-size head on the user's own class folders: "class 0 (ant)", never ImageNet's
    "class 0 (tench)" (the labels are the user's classes, not ImageNet indices)."""
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "k1000.pth")
    out = tmp_path / "run"
    args = ["run", "--data", str(own / "data"), "--weights", str(tmp_path / "k1000.pth")]
    args += ["--model", "timm:test_resnet", *ONE_MAP, "--quiet", "--out", str(out)]
    proc = cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (out / "gallery" / "page-001.html").read_text()
    assert "class 0 (ant)" in page and "tench" not in page


NETS = """\
from pathlib import Path

import timm
import torch


def build():
    model = timm.create_model("test_resnet", num_classes=3)
    model.load_state_dict(torch.load(Path(__file__).with_name("w.pth"), weights_only=True))
    return model
"""


@pytest.fixture
def factory_run(own, tmp_path) -> tuple[Path, list[str], Path]:
    """A run of ``mynets.nets:build``, an importable module whose factory loads its own weights
    (``mynets/w.pth``): ``(package folder, the command, the run folder)``."""
    pkg = tmp_path / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(NETS)
    sd = torch.load(own / "w.pth", weights_only=True)["state_dict"]
    torch.save({k.removeprefix("module."): v for k, v in sd.items()}, pkg / "w.pth")
    out = tmp_path / "run"
    args = ["run", "--data", str(own / "data"), "--model", "mynets.nets:build", *ONE_MAP]
    args += ["--no-report", "--quiet", "--out", str(out)]
    proc = cli(args, cwd=tmp_path)  # the module is found in the working folder
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pkg, args, out


def _drop_one_unit(out: Path) -> None:
    next(iter(sorted((out / "units").glob("*.json")))).unlink()


def test_resume_refuses_a_factory_that_loads_other_weights_now(factory_run, tmp_path):
    """The factory reads new weights itself (nothing in the config changed): resuming would
    mix the old model's scores with the new one's; it is refused, naming what changed."""
    pkg, args, out = factory_run
    meta = json.loads((out / "run.json").read_text())
    sd = torch.load(pkg / "w.pth", weights_only=True)
    sd["fc.bias"] += 1
    torch.save(sd, pkg / "w.pth")
    _drop_one_unit(out)
    before = unit_scores(out)
    proc = cli(args, cwd=tmp_path)
    line = assert_user_error(proc.returncode, proc.stderr, "changed since it started", "fc")
    assert unit_scores(out) == before  # nothing was computed or overwritten
    assert set(meta["model"]["parts"]) >= {"fc", "conv1"}
    assert "conv1" not in line and meta["model"]["digest"] in line


def test_resume_refuses_an_edited_factory_module(factory_run, tmp_path):
    """The factory's source is part of the run's identity (its module and package files)."""
    pkg, args, out = factory_run
    (pkg / "nets.py").write_text(NETS.replace("num_classes=3)", "num_classes=3, drop_rate=0.0)"))
    _drop_one_unit(out)
    proc = cli(args, cwd=tmp_path)
    assert_user_error(proc.returncode, proc.stderr, "incompatible run", "model_sha")


try:
    import ray
except ImportError:
    ray = None


@pytest.mark.skipif(ray is None, reason="needs the ray extra: pip install 'absgrad[ray]'")
def test_ray_workers_rebuild_the_case_and_model(own, own_run, tmp_path):
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "absgrad.cli", "run", *_own_args(own), *ARGS]
    cmd += ["--executor", "ray", "--workers", "1", "--no-report", "--out", str(out)]
    env = {**cli_env(), "RAY_DISABLE_USAGE_STATS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every score; to 1e-6, not bit for bit: a Ray worker runs torch on its own thread count,
    # and another thread count sums in another order (moves of about 1e-8)
    got, want = unit_scores(out), unit_scores(own_run)
    assert got.keys() == want.keys()
    for uid in want:
        assert _numbers(got[uid]).keys() == _numbers(want[uid]).keys(), uid
        for key, value in _numbers(want[uid]).items():
            np.testing.assert_allclose(_numbers(got[uid])[key], value, atol=1e-6, err_msg=key)
    session = json.loads((out / "run.json").read_text())["sessions"][-1]
    assert session["executor"]["name"] == "ray"


def _numbers(tree: object, prefix: str = "") -> dict[str, np.ndarray]:
    """The numbers of a nested dict/list of scores, by path: ``{"sg/rcap": array}``."""
    if isinstance(tree, dict):
        out: dict[str, np.ndarray] = {}
        for k, v in tree.items():
            out.update(_numbers(v, f"{prefix}/{k}"))
        return out
    return {prefix: np.asarray(tree, dtype=float)}
