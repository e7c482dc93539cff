"""Regression suite of bad inputs and faults: each gives a clear error or a correct result.

Rows of the reliability table: NaN/Inf spread and noise, BlurIG and Guided IG parameters, IG
steps, weights files (empty, NaN), the explain output folder, ``report --tables``, YAML duplicate
keys, the CLI's handling of user errors against bugs. Data edits, damaged units, the run lock and
interruption are tested in tests/protocol/test_run_safety.py; label files in tests/cases/test_io.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import absgrad
from absgrad.cli import main
from absgrad.errors import AbsgradError
from absgrad.methods.samplers import BlurPathSampler, GuidedPathSampler, NoiseSampler
from absgrad.protocol.config import ConfigError, load_config_file, make_config
from support.cli_errors import user_error

TINY = ["--methods", "vg", "--metrics", "rcap", "--limit", "2", "--quiet", "--no-report"]


# -- row 4: NaN / Inf spread and noise -------------------------------------------------------------
@pytest.mark.parametrize("spread", [math.nan, math.inf, -0.1])
def test_spread_not_finite_or_negative_is_refused_by_api(tiny_model, tiny_inputs, spread):
    with pytest.raises(AbsgradError, match="spread must be a finite number >= 0"):
        absgrad.explain(tiny_model, tiny_inputs, 0, "sg", n_samples=2, spread=spread)
    with pytest.raises(AbsgradError, match="spread"):
        NoiseSampler(spread=spread)  # the sampler itself checks, however it is built


def test_spread_nan_in_yaml_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("case: synthetic\nsampling:\n  spread: .nan\n")
    with pytest.raises(ConfigError, match="config field 'spread'.*finite"):
        make_config(load_config_file(p))


def test_explicit_nan_noise_is_refused(tiny_model, tiny_inputs):
    noise = torch.zeros(2, *tiny_inputs.shape)
    noise[1, 0, 0, 0, 0] = math.nan
    with pytest.raises(AbsgradError, match="noise.*NaN"):
        absgrad.explain(tiny_model, tiny_inputs, 0, "sg", n_samples=2, noise=noise)


# -- row 5: BlurIG ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_sigma": -5.0}, "max_sigma must be a finite number > 0"),
        ({"kernel_size": 0}, "kernel_size"),
    ],
)
def test_blurig_bad_parameters(tiny_model, tiny_inputs, params, match):
    with pytest.raises(AbsgradError, match=match):
        absgrad.explain(tiny_model, tiny_inputs, 0, "blurig", n_samples=2, **params)
    with pytest.raises(AbsgradError, match=match):
        BlurPathSampler(**params)


# -- rows 8, 10: Guided IG max_dist / fraction, IG steps -------------------------------------------
@pytest.mark.parametrize(
    "method, params, match",
    [
        ("guidedig", {"max_dist": -1.0}, r"max_dist must be a number in \[0, 1\]"),
        ("guidedig", {"fraction": 2.0}, r"fraction must be a number in \(0, 1\]"),
        ("guidedig", {"fraction": 0.0}, "fraction"),
        ("ig", {"steps": 0}, "steps must be an integer >= 1"),
        ("ig", {"n_samples": 2, "steps": 2.5}, "steps"),
    ],
)
def test_path_method_parameters(tiny_model, tiny_inputs, method, params, match):
    with pytest.raises(AbsgradError, match=match):
        absgrad.explain(tiny_model, tiny_inputs, 0, method, **params)


def test_guided_ig_max_dist_bounds_terminate_with_finite_maps(tiny_model, tiny_inputs):
    for d in (0.0, 1.0):
        m = absgrad.explain(tiny_model, tiny_inputs, 0, "guidedig", n_samples=3, max_dist=d)
        assert torch.isfinite(m).all() and m.shape == (2, 16, 16)
    with pytest.raises(AbsgradError, match="max_dist"):
        GuidedPathSampler(max_dist=-1.0)


def test_bad_params_from_cli_and_extra_maps_are_user_errors(capsys, tmp_path):
    src = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (120, 30, 60)).save(src)
    base = ["explain", str(src), "--model", "synthetic", "--out", str(tmp_path / "m.png")]
    err = user_error(capsys, [*base, "--method", "guidedig", "--param", "max_dist=-1"])
    assert "max_dist" in err
    err = user_error(capsys, [*base, "--method", "ig", "--param", "steps=0"])
    assert "steps must be an integer >= 1" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "case: synthetic\nextra_maps:\n  gig:\n    method: guidedig\n    params: {max_dist: -1}\n"
    )
    err = user_error(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r"), *TINY])
    assert "extra_maps.gig" in err and "max_dist" in err
    assert not (tmp_path / "r").exists()


# -- rows 10, 11: weights files --------------------------------------------------------------------
def _explain(tmp_path: Path, *extra: str) -> list[str]:
    src = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (120, 30, 60)).save(src)
    return ["explain", str(src), "--model", "synthetic", "--out", str(tmp_path / "m.png"), *extra]


def test_empty_weights_file(capsys, tmp_path):
    w = tmp_path / "empty.pt"
    w.write_bytes(b"")
    err = user_error(capsys, _explain(tmp_path, "--weights", str(w)))
    assert "empty.pt" in err and "empty file" in err


def test_nan_weights_are_refused_naming_file_and_tensor(capsys, tmp_path):
    from absgrad.cases.synthetic import synthetic_model

    sd = synthetic_model().state_dict()
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first] = torch.full_like(sd[first], math.nan)
    w = tmp_path / "nan.pt"
    torch.save(sd, w)
    err = user_error(capsys, _explain(tmp_path, "--weights", str(w)))
    assert "nan.pt" in err and "NaN or infinite" in err and first in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without GPU")
def test_device_cuda_without_gpu(capsys, tmp_path):
    err = user_error(capsys, _explain(tmp_path, "--device", "cuda"))
    assert "no CUDA device" in err
    err = user_error(
        capsys, ["run", "--case", "synthetic", "--device", "cuda", "--out", str(tmp_path / "r")]
    )
    assert "'device'" in err and "no CUDA device" in err


# -- row 12: explain --out FOLDER ------------------------------------------------------------------
def test_explain_out_folder_writes_inside_it(capsys, tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    argv = _explain(tmp_path, "--method", "vg")
    argv[argv.index("--out") + 1] = str(folder)
    assert main(argv) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["x-vg.npy", "x-vg.png"]
    assert not (tmp_path / "maps.png").exists()
    argv[argv.index("--out") + 1] = str(tmp_path / "noext")
    assert "give a file name ending in .png" in user_error(capsys, argv)


# -- row 7: report --tables of a table the run lacks -----------------------------------------------
def test_report_of_a_table_the_run_lacks_is_refused_and_keeps_the_report(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--case", "synthetic", *TINY[:-1], "--tables", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    before = (out / "tables" / "tables.md").read_text()
    assert "|" in before
    err = user_error(capsys, ["report", str(out), "--tables", "9"])
    assert "tables 9 asked" in err and "computed tables 1" in err
    assert (out / "tables" / "tables.md").read_text() == before


# -- row 13: YAML duplicate keys -------------------------------------------------------------------
def test_yaml_duplicate_key_is_refused_with_its_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("case: synthetic\nsampling:\n  spread: 0.1\n  spread: 0.3\n")
    with pytest.raises(
        ConfigError, match=r"line 4, column 3: duplicate key 'spread' \(first at line 3\)"
    ):
        load_config_file(p)


# -- the CLI: user errors exit 2, bugs show a traceback --------------------------------------------
def test_cli_lets_a_bug_show_as_a_bug(monkeypatch, tmp_path):
    import absgrad.cli as cli

    def broken(args):
        raise ValueError("an internal inconsistency")

    parser = cli.build_parser()
    args = parser.parse_args(["list", "methods"])
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(args, "func", broken, raising=False)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    with pytest.raises(ValueError, match="internal inconsistency"):
        main(["list", "methods"])


def test_every_user_error_type_is_an_absgrad_error():
    from absgrad.cases import UnreadableImageError
    from absgrad.cases.io import LabelTableError
    from absgrad.errors import MissingFileError
    from absgrad.models import CheckpointError
    from absgrad.params import ParamError, UnknownParamError
    from absgrad.protocol.store import RunDirError

    for cls in (CheckpointError, UnreadableImageError, LabelTableError, MissingFileError,
                ParamError, UnknownParamError, RunDirError, ConfigError):  # fmt: skip
        assert issubclass(cls, AbsgradError), cls
    with pytest.raises(AbsgradError, match="unknown case"):
        absgrad.cases.get_case("nosuch")


def test_sixteen_bit_png_through_explain(capsys, tmp_path):
    """Row 3 through the CLI: a 16-bit grey PNG reads as its grey level, not as white."""
    from absgrad.cases import get_case

    src = tmp_path / "g16.png"
    Image.fromarray(np.full((40, 40), 13107, dtype=np.uint16)).save(src)  # 0.2 of full scale
    x = get_case("synthetic").load_image(src)  # what explain feeds the model
    assert abs(float(x.mean()) - 51 / 255) < 1e-6


# -- row 6: a file listed twice in the label files of the other cases -------------------------------
def test_isic_and_places365_refuse_an_image_listed_twice(tmp_path):
    from absgrad.cases import get_case

    isic = tmp_path / "isic"
    (isic / "train").mkdir(parents=True)
    for name in ("ISIC_1", "ISIC_2"):
        Image.new("RGB", (16, 16)).save(isic / "train" / f"{name}.jpg")
    (isic / "train.csv").write_text(
        "image_name,diagnosis\nISIC_1,nevus\nISIC_2,melanoma\nISIC_1,nevus\n"
    )
    with pytest.raises(
        AbsgradError, match=r"train\.csv, row 4: image_name 'ISIC_1' is listed again"
    ):
        get_case("isic", data=isic).samples()
    places = tmp_path / "places"
    (places / "val_256").mkdir(parents=True)
    (places / "categories_places365.txt").write_text(
        "".join(f"/c/cat{i} {i}\n" for i in range(365))
    )
    (places / "places365_val.txt").write_text("a.jpg 0\nb.jpg 1\na.jpg 0\n")
    with pytest.raises(
        AbsgradError, match=r"line 3: file 'a\.jpg' is listed again \(first at line 1\)"
    ):
        get_case("places365", data=places).samples()
