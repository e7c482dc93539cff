"""Regression suite of bad inputs and faults: each gives a clear error or a correct result.

Rows of the reliability table: NaN/Inf spread and noise, BlurIG and Guided IG parameters, IG
steps, weights files (empty, NaN), the explain output folder, ``report --tables``, YAML duplicate
keys, the CLI's handling of user errors against bugs. Data edits, damaged units, the run lock and
interruption are tested in tests/protocol/test_run_safety.py; label files in tests/cases/test_io.py.
"""

from __future__ import annotations

import json
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


# -- issue 23, item 10: faults of the model, sizes and targets are one-line errors -----------------
MODELS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, scale=1.0, detach=False):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 3)
        self.scale, self.detach = scale, detach

    def forward(self, x):
        out = self.fc(torch.relu(self.conv(x)).mean((2, 3))) * self.scale
        return out.detach() if self.detach else out


def nan_logits():
    return Net(scale=float("nan"))


def detached():
    return Net(detach=True)


def raises():
    raise RuntimeError("no GPU on this machine")


def needs_an_argument(depth):
    return Net()
"""


@pytest.fixture
def own(tmp_path) -> list[str]:
    """``run`` arguments for two photos in class folders and a model file of broken models."""
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        Image.new("RGB", (40, 40), (40 * len(c), 90, 30)).save(tmp_path / "data" / c / "x.png")
    (tmp_path / "models.py").write_text(MODELS)
    return ["run", "--data", str(tmp_path / "data"), "--size", "32", "--no-select", *TINY]


@pytest.mark.parametrize(
    "factory, names",
    [
        ("nan_logits", ["the model returned NaN or infinite logits"]),
        ("detached", ["the model's output has no gradient with respect to its input"]),
        ("raises", ["models.py:raises: the factory raised RuntimeError: no GPU on this machine"]),
        ("needs_an_argument", ["needs_an_argument: the factory cannot be called", "'depth'"]),
    ],
)
def test_a_broken_model_is_a_one_line_error(own, tmp_path, capsys, factory, names):
    """Before the fix: a plain ValueError (NaN logits), torch's "element 0 of tensors does not
    require grad", and the factory's own exception, each as a traceback (exit 1)."""
    spec = f"{tmp_path / 'models.py'}:{factory}"
    user_error(capsys, [*own, "--model", spec, "--out", str(tmp_path / "r")], *names)
    assert not (tmp_path / "r").exists()  # refused before any work


def test_nan_logits_and_a_detached_output_through_the_api(tiny_inputs):
    """The library's calls raise the project's error (an InputError) for the same faults."""
    from absgrad.errors import InputError

    namespace: dict = {}
    exec(MODELS, namespace)  # noqa: S102 - the test's own model code
    x = tiny_inputs[:, :, :8, :8]
    maps = torch.rand(2, 8, 8)
    with pytest.raises(InputError, match="the model returned NaN or infinite logits for"):
        absgrad.metrics.rcap(namespace["nan_logits"]().eval(), x, 0, maps)
    for method in ("vg", "gradcam"):
        with pytest.raises(InputError, match="no gradient with respect to its input"):
            absgrad.explain(namespace["detached"]().eval(), x, 0, method)


@pytest.mark.parametrize("size", ["100000", "5000x224"])
def test_a_huge_input_size_is_refused_before_any_allocation(own, tmp_path, capsys, size):
    """``--size 100000`` asked PyTorch for 120 GB (one zero image for the model's first call)
    and died in the allocator with a traceback; sides are bounded at 4096 pixels."""
    from absgrad.models.preprocess import MAX_SIDE

    spec = f"{tmp_path / 'models.py'}:detached"
    argv = [*own, "--model", spec, "--out", str(tmp_path / "r")]
    argv[argv.index("--size") + 1] = size
    line = user_error(capsys, argv, f"size '{size}' is larger than {MAX_SIDE} pixels a side")
    assert ("120 GB" in line) == (size == "100000")
    src = tmp_path / "data" / "a" / "x.png"
    argv = ["explain", str(src), "--model", spec, "--size", size, "--out", str(tmp_path / "m.png")]
    user_error(capsys, argv, f"larger than {MAX_SIDE} pixels")


@pytest.mark.parametrize("target", [5000, -1])
def test_a_target_out_of_range_is_the_projects_error_naming_the_class_count(
    tiny_model, tiny_inputs, target
):
    """``explain(m, x, 5000, ...)`` and ``rcap(..., 5000, ...)`` raised a plain ValueError while
    ``-1`` raised the project's; both now raise an InputError naming the target and the model's
    class count (the tiny model has 5)."""
    from absgrad.errors import InputError

    match = rf"target {target} is out of range for a model with 5 classes \(class indices 0..4\)"
    for method, params in (("vg", {}), ("gag", {"n_samples": 2}), ("gradcam", {}), ("gb", {})):
        with pytest.raises(InputError, match=match):
            absgrad.explain(tiny_model, tiny_inputs, target, method, **params)
    maps = torch.rand(2, *tiny_inputs.shape[2:])
    for metric in (absgrad.metrics.rcap, absgrad.metrics.deletion_insertion):
        with pytest.raises(InputError, match=match):
            metric(tiny_model, tiny_inputs, target, maps)
    per_image = torch.tensor([0, target])  # one image's target is bad
    with pytest.raises(InputError, match=match):
        absgrad.metrics.rcap(tiny_model, tiny_inputs, per_image, maps)


@pytest.mark.parametrize("fault", ["file_in_the_way", "read_only"])
def test_explain_out_into_an_unwritable_place_is_refused_before_the_work(
    capsys, tmp_path, monkeypatch, fault
):
    """Before the fix ``explain --out`` under a file, or in a folder the user may not write
    (simulated, as the tests run as root), computed the map and then died with a traceback."""
    import errno
    import os
    import tempfile

    from absgrad.utils import files

    argv = _explain(tmp_path, "--method", "vg")
    if fault == "file_in_the_way":
        (tmp_path / "afile").write_text("")
        out, why = tmp_path / "afile" / "m.png", "a file is in the way"
    else:
        (tmp_path / "ro").mkdir()
        out, why = tmp_path / "ro" / "m.png", "Permission denied"

        def refused(*args, dir=None, **kw):  # noqa: A002 - TemporaryFile's name
            if Path(dir) == tmp_path / "ro":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return tempfile.TemporaryFile(*args, dir=dir, **kw)

        monkeypatch.setattr(files.tempfile, "TemporaryFile", refused)
    argv[argv.index("--out") + 1] = str(out)
    monkeypatch.setattr(absgrad.explanation, "explain_file", None)  # no work may start
    user_error(capsys, argv, f"cannot write the map into {out.parent}", why)


# -- issue 23, item 11: one rule for unreadable images, for name case, an empty --out ------------
@pytest.mark.parametrize("selection", [["--no-select"], ["--threshold", "0"]])
def test_an_unreadable_image_is_skipped_alike_with_or_without_selection(
    own, tmp_path, capsys, selection
):
    """An empty file and a truncated JPEG are both skipped with a warning naming them, and
    counted (run.json ``images.unreadable``, the report's facts), whether images are selected
    or not. Before the fix a truncated JPEG stopped a ``--no-select`` run while an empty file
    was skipped."""
    data = tmp_path / "data"
    (data / "a" / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (40, 40), (200, 10, 10)).save(data / "b" / "cut.jpg", quality=95)
    whole = (data / "b" / "cut.jpg").read_bytes()
    (data / "b" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    argv = [*own, "--model", f"{tmp_path / 'models.py'}:Net", "--out", str(tmp_path / "r")]
    argv.remove("--no-select")
    argv.remove("--no-report")
    with pytest.warns(UserWarning, match="skipping unreadable file") as caught:
        assert main([*argv, *selection]) == 0
    warned = " ".join(str(w.message) for w in caught)
    assert "empty.jpg" in warned and "cut.jpg" in warned
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["images"]["ids"] == ["a/x", "b/x"]
    assert sorted(Path(f).name for f in meta["images"]["unreadable"]) == ["cut.jpg", "empty.jpg"]
    report = (tmp_path / "r" / "report.html").read_text()
    assert "2 unreadable image file(s) skipped" in report


def test_method_metric_and_map_names_are_case_insensitive(tmp_path):
    """``explain --method GAG`` was accepted while ``run --methods VG`` was refused: names of
    methods, maps and metrics are case-insensitive everywhere, kept in lower case (one run for
    ``VG`` and ``vg``)."""
    from absgrad.cases.base import PAPER_REVERSAL
    from absgrad.metrics import get_metric
    from absgrad.protocol.plan import resolve_specs

    upper = make_config({"case": "synthetic", "maps": ["VG", "Gag-85"], "metrics": ["RCAP"]})
    lower = make_config({"case": "synthetic", "maps": ["vg", "gag-85"], "metrics": ["rcap"]})
    assert upper.config_hash() == lower.config_hash()
    specs = list(resolve_specs(upper, PAPER_REVERSAL, None))
    assert specs == list(resolve_specs(lower, PAPER_REVERSAL, None))
    assert {"vg", "gag-85"} <= set(specs)
    assert get_metric("DAUC").key == "dauc"
    extra = {"MyGag": {"method": "GAG", "params": {"n_samples": 4}}}
    config = make_config({"case": "synthetic", "extra_maps": extra, "maps": ["mygag"]})
    assert config.extra_maps == {"mygag": {"method": "gag", "params": {"n_samples": 4}}}
    assert list(resolve_specs(config, PAPER_REVERSAL, None)) == ["mygag"]
    twice = {"a": {"method": "vg"}, "A": {"method": "sg"}}
    with pytest.raises(ConfigError, match="extra_maps.A.*differs from another only in case"):
        make_config({"case": "synthetic", "extra_maps": twice})


@pytest.mark.parametrize("command", ["run", "explain", "compare"])
def test_an_empty_out_is_refused(capsys, tmp_path, synthetic_run, command):
    """``--out ''`` wrote into a default folder (run) or the current folder: it is refused."""
    argv = {
        "run": ["run", "--case", "synthetic", *TINY],
        "explain": _explain(tmp_path),
        "compare": ["compare", str(synthetic_run), str(synthetic_run)],
    }[command]
    if "--out" in argv:
        argv[argv.index("--out") + 1] = ""
    else:
        argv += ["--out", ""]
    user_error(capsys, argv, "--out is empty")
