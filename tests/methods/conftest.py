"""Fixtures of the method tests: the tiny model and inputs in double precision."""

from __future__ import annotations

import pytest


@pytest.fixture
def dmodel(tiny_model):
    return tiny_model.double()


@pytest.fixture
def x(tiny_inputs):
    return tiny_inputs.double()
