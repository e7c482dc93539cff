"""The table of flags: each config field it sets exists and reaches the run's config as the same
field written in YAML would; explain's flags are explain_file's arguments."""

from __future__ import annotations

import dataclasses
import inspect
import shlex

import pytest

from absgrad.cli import build_parser
from absgrad.cli.flags import FLAGS, config_overrides, flag_name, flags_of
from absgrad.protocol.config import RunConfig, make_config

#: every run flag that sets a config field, and the same settings in a config file's layout
RUN_FLAGS = (
    "--case synthetic --tables 1,3 --methods gag-85,sg --metrics rcap,dauc --batch-size 8 "
    "--eval-batch-size auto --channels-last --engine eager --precision bf16 --seed 3 "
    "--n-samples 5 --threshold 0.5 --no-select --skip-unsupported --layer block2 --limit 4 "
    "--device cpu"
)
RUN_YAML = {
    "case": "synthetic",
    "tables": [1, 3],
    "maps": ["gag-85", "sg"],
    "metrics": ["rcap", "dauc"],
    "batch_size": 8,
    "eval_batch_size": "auto",
    "channels_last": True,
    "engine": "eager",
    "precision": "bf16",
    "seed": 3,
    "sampling": {"n_samples": 5},
    "threshold": 0.5,
    "select": False,
    "skip_unsupported": True,
    "gradcam_layer": "block2",
    "limit": 4,
    "device": "cpu",
}
OWN_FLAGS = (
    "--data photos --weights w.pth --model timm:resnet18 --masks masks --labels l.csv "
    "--classes imagenet --size 64x32 --resize stretch --norm 0.5"
)
OWN_YAML = {
    "data": "photos",
    "weights": "w.pth",
    "model": "timm:resnet18",
    "masks": "masks",
    "labels": "l.csv",
    "classes": "imagenet",
    "size": "64x32",
    "resize": "stretch",
    "norm": "0.5",
}


def parse(line: str):
    return build_parser().parse_args(shlex.split(line))


def config_of(line: str, raw: dict | None = None) -> RunConfig:
    args = parse(line)
    return make_config(raw or {}, config_overrides(args, args.command))


@pytest.mark.parametrize("command", ["run", "demo", "explain"])
def test_each_config_field_a_flag_sets_exists_and_is_set_once(command):
    fields = [f.field for f in flags_of(command) if f.field is not None]
    assert set(fields) <= {f.name for f in dataclasses.fields(RunConfig)}
    assert len(fields) == len(set(fields)), fields


def test_run_flags_set_the_config_a_yaml_file_sets():
    assert config_of(f"run {RUN_FLAGS}") == make_config(RUN_YAML)
    assert config_of(f"run {OWN_FLAGS}") == make_config(OWN_YAML)


def test_a_flag_not_given_leaves_the_config_file_alone():
    # switches included: --channels-last absent must not turn the file's true into false
    assert config_of("run", RUN_YAML) == make_config(RUN_YAML)
    assert config_of("run", OWN_YAML) == make_config(OWN_YAML)
    assert config_of("run --seed 9 --limit 2", RUN_YAML) == make_config(
        {**RUN_YAML, "seed": 9, "limit": 2}
    )


def test_demo_takes_only_the_output_and_device_flags_of_run():
    demo = {n for f in flags_of("demo") for n in f.names}
    run = {n for f in flags_of("run") for n in f.names}
    assert demo < run
    assert not demo & {"--case", "--config", "--data", "--model", "--methods"}
    assert config_of("demo --limit 2 --device cpu", {"case": "demo"}) == make_config(
        {"case": "demo", "limit": 2, "device": "cpu"}
    )


def test_explain_flags_are_explain_file_arguments():
    from absgrad.explanation import explain_file, save_explanation

    keys = {f.key for f in flags_of("explain")}
    arguments = set(inspect.signature(explain_file).parameters)
    # --param KEY=VALUE builds `params`; --out is save_explanation's `out`
    assert keys - {"param", "out"} == arguments - {"params"}
    assert "out" in inspect.signature(save_explanation).parameters
    assert flag_name("explain", "target") == "--target"
    assert flag_name("explain", "image") == "image"
    with pytest.raises(KeyError):
        flag_name("explain", "tables")


def test_every_row_is_some_command_s_and_every_command_has_a_parser():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert {c for f in FLAGS for c in f.commands} <= commands
