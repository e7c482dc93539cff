"""Property test: random parameter values and config fields thrown at ``explain``, the metrics and
``make_config``. Every call returns a finite map / score / config or raises ``AbsgradError`` with
a message; never another exception, never NaN, never a hang (each call is time-boxed)."""

from __future__ import annotations

import math
import os
import signal
from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import absgrad
from absgrad.errors import AbsgradError
from absgrad.methods import METHODS
from absgrad.metrics import deletion_insertion, pointing_game, rcap
from absgrad.protocol.config import FIELDS, SECTIONS, RunConfig, make_config

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM (POSIX)")
SETTINGS = settings(
    max_examples=int(os.environ.get("ABSGRAD_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=not os.environ.get("ABSGRAD_FUZZ_EXAMPLES"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Hang(Exception):
    pass


@contextmanager
def time_box(seconds: int = 20):
    """Fail a call that runs longer than ``seconds`` (a hang) instead of waiting forever."""

    def alarm(*_):
        raise Hang(f"call ran over {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def outcome(call):
    """The call's value, or None when it raised AbsgradError with a message; else the test fails."""
    try:
        with time_box():
            return call()
    except AbsgradError as e:
        assert str(e).strip(), f"{type(e).__name__} without a message"
        return None


#: Values a careless user (or a YAML file) might give: any type, NaN, infinities, extremes.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=7),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=-2.0, max_value=2.0),
    st.sampled_from(["", "abs", "guided", "var", "raw", "log_softmax", "mean", "1e9", "cuda"]),
    st.lists(st.integers(min_value=-1, max_value=3), max_size=3),
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 3),
    ).eval()


MODEL = _model()
X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@SETTINGS
@given(
    method=st.sampled_from(sorted(METHODS)),
    data=st.data(),
)
def test_explain_with_random_parameters(method, data):
    names = sorted(set(METHODS[method].defaults) - {"layer", "noise", "baselines"})
    chosen = data.draw(st.lists(st.sampled_from([*names, "bogus"]), max_size=3, unique=True))
    params = {k: data.draw(ANY_VALUE, label=k) for k in chosen}
    # keep the sizes small so that a valid call stays fast (the point is validation, not work)
    for k in ("n_samples", "steps", "kernel_size"):
        if isinstance(params.get(k), int) and not isinstance(params[k], bool):
            params[k] = min(params[k], 5)
    m = outcome(lambda: absgrad.explain(MODEL, X, [0, 2], method, **params))
    if m is not None:
        assert m.shape == (2, 8, 8) and torch.isfinite(m).all()
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0


@SETTINGS
@given(
    lower_bound=ANY_VALUE,
    interval=ANY_VALUE,
    steps=ANY_VALUE,
    top=ANY_VALUE,
)
def test_metrics_with_random_parameters(lower_bound, interval, steps, top):
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    for call in (
        lambda: rcap(MODEL, X, [0, 1], maps, lower_bound=lower_bound, interval=interval).score,
        lambda: deletion_insertion(MODEL, X, [0, 1], maps, steps=steps).deletion,
        lambda: pointing_game(maps, masks, top=top),
    ):
        score = outcome(call)
        if score is not None:
            assert torch.isfinite(torch.as_tensor(score, dtype=torch.float64)).all()


CONFIG_KEYS = sorted({*FIELDS, *SECTIONS, "bogus"} - {"case"})


@SETTINGS
@given(data=st.data())
def test_make_config_with_random_fields(data):
    keys = data.draw(st.lists(st.sampled_from(CONFIG_KEYS), max_size=4, unique=True))
    raw = {"case": data.draw(st.sampled_from(["synthetic", "demo", ""]))}
    for k in keys:
        if k in SECTIONS:
            sub = data.draw(st.lists(st.sampled_from([*SECTIONS[k], "x"]), max_size=2, unique=True))
            raw[k] = {s: data.draw(ANY_VALUE) for s in sub}
        else:
            raw[k] = data.draw(ANY_VALUE)
    config = outcome(lambda: make_config(raw))
    if config is not None:
        assert isinstance(config, RunConfig)
        for f in ("spread", "percentile", "rcap_lower_bound", "rcap_interval"):
            assert math.isfinite(getattr(config, f)), f
        assert len(config.config_hash()) == 16
