"""Packaging metadata users and tools rely on: licence, typing marker, torch bounds, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement  # a dependency of pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement(name: str) -> Requirement:
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    return next(r for r in reqs if r.name == name)


def test_license_file_matches_pyproject():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert "LICENSE" in project["license-files"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "the absgrad developers" in text


def test_py_typed_is_shipped():
    assert (ROOT / "src" / "absgrad" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["absgrad"]
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]


def test_torch_has_an_upper_bound_that_admits_the_tested_pin():
    for name in ("torch", "torchvision"):
        spec = _requirement(name).specifier
        assert any(s.operator == "<" for s in spec), f"{name} needs an upper bound"
        for reqs in ("requirements.txt", "requirements-dev.txt"):
            pins = re.findall(rf"^{name}==(\S+)$", (ROOT / reqs).read_text(), re.M)
            assert pins, f"{reqs} pins no {name}"
            assert spec.contains(pins[0]), f"{reqs} pins {name}=={pins[0]} outside {spec}"


def test_user_docs_stand_alone():
    """Docs speak to users: no pointers to internal specs, issue numbers or section marks."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    bad = re.compile(r"\bSPEC\b|§|\b[Ii]ssues? #?\d+|\bthe issue\b")
    hits = [
        f"{p.name}:{i}: {line.strip()}"
        for p in pages
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if bad.search(line)
    ]
    assert not hits, "\n".join(hits)
