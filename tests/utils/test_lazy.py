"""Lazy package attributes: a name imports its submodule on first use, and only then."""

from __future__ import annotations

import subprocess
import sys

import pytest

from absgrad.utils.lazy import lazy_exports


def test_a_name_imports_its_module_once_and_is_kept():
    namespace: dict[str, object] = {}
    getattr_, dir_ = lazy_exports("pkg", {"dumps": "json", "sqrt": "math"}, namespace)
    assert "json" in sys.modules  # imported by pytest already: this checks the value only
    import json

    assert getattr_("dumps") is json.dumps
    assert namespace == {"dumps": json.dumps}
    assert dir_() == ["dumps", "sqrt"]
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'nope'"):
        getattr_("nope")


@pytest.mark.parametrize(
    ("package", "name", "heavy"),
    [
        ("absgrad.report", "build_report", "torch"),
        ("absgrad.protocol", "make_config", "torch"),
        ("absgrad.metrics", "rcap_percentiles", "torch"),
        ("absgrad.models", "parse_model_spec", "torch"),
    ],
)
def test_packages_import_without_their_heavy_submodules(package, name, heavy):
    """The packages' light names resolve without importing torch (a fresh interpreter)."""
    code = (
        f"import sys, {package} as p; p.{name}; "
        f"assert {name!r} in dir(p); print({heavy!r} in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
