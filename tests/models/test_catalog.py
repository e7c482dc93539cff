"""``absgrad list models [PATTERN]``: the timm and torchvision names with published weights, as
each library lists them, and how to name a Hugging Face model; later calls import no torch."""

from __future__ import annotations

import subprocess
import sys

import timm
import torchvision.models as tvm

from absgrad.models.catalog import matches, model_lines
from support.cli_errors import assert_user_error
from support.runs import cli, cli_env


def test_names_are_the_libraries_and_a_second_call_imports_no_torch(capsys):
    lines = model_lines("resnet18")
    timm_names = {ln.strip() for ln in lines if ln.startswith("  timm:")}
    assert timm_names == {f"timm:{n}" for n in timm.list_models("*resnet18*", pretrained=True)}
    tv = [ln.split() for ln in lines if ln.startswith("  torchvision:")]
    expected = tvm.get_model_weights("resnet18").DEFAULT
    assert ["torchvision:resnet18", f"{type(expected).__name__}.{expected.name}"] in tv
    assert all("resnet18" in name for name, _ in tv)
    assert any(ln.strip().startswith("hf:ORG/NAME ") for ln in lines)
    # the names are kept in the test's absgrad cache: a fresh interpreter answers without torch
    code = (
        "import sys; from absgrad.models.catalog import model_lines; "
        "n = len(model_lines('convnext')); print(n, 'torch' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120
    )
    count, imported = proc.stdout.split()
    assert int(count) > 3 and imported == "False", proc.stderr[-2000:]


def test_patterns_wildcards_or_a_part_of_the_name():
    assert matches("resnet18.a1_in1k", "RESNET18") and matches("resnet18.a1_in1k", "res*_in1k")
    assert not matches("resnet18.a1_in1k", "vit") and matches("anything", None)


def test_the_command_and_a_pattern_for_another_list():
    proc = subprocess.run(  # python -m absgrad, as the absgrad command
        [sys.executable, "-m", "absgrad", "list", "models", "vit_tiny*"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "  timm:vit_tiny_patch16_224.augreg_in21k_ft_in1k" in proc.stdout
    assert "torchvision (0;" in proc.stdout  # no torchvision name starts with vit_tiny
    proc = cli(["list", "cases", "x"])
    assert_user_error(proc.returncode, proc.stderr, "applies to `absgrad list models`")
