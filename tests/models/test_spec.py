"""Model spec strings: parsing, and parsing without torch (the config check uses it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from absgrad.models.spec import ModelSpecError, parse_model_spec


def test_parse_specs(tmp_path):
    assert parse_model_spec("timm:resnet18") == parse_model_spec(" timm:resnet18")
    assert str(parse_model_spec("torchvision:resnet18")) == "torchvision:resnet18"
    assert parse_model_spec("pkg.mod:make").kind == "callable"
    f = tmp_path / "m.py"
    f.write_text("")
    spec = parse_model_spec(f"{f}:build")
    assert spec.is_file and spec.name == f"{f.resolve()}:build"
    for bad in ("resnet18", "timm:", "pkg mod:make", "missing.py:build"):
        with pytest.raises(ModelSpecError):
            parse_model_spec(bad)


def test_parsing_imports_no_torch():
    code = (
        "import sys; from absgrad.models import parse_model_spec; "
        "parse_model_spec('timm:resnet18'); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
