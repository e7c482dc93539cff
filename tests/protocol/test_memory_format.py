"""The channels-last option: validated, hashed only when on, and the same scores to fp32 noise."""

from __future__ import annotations

import pytest
import torch

from absgrad.protocol import build_context, make_config
from absgrad.protocol.config import ConfigError
from absgrad.protocol.runner import plan_run
from absgrad.protocol.worker import run_unit


def test_option_is_validated_and_hashed_only_when_on():
    base = make_config({"case": "synthetic"})
    on = make_config({"case": "synthetic", "channels_last": True})
    assert "channels_last" not in base.hash_dict()  # older runs keep their hash
    assert (
        base.config_hash()
        == make_config({"case": "synthetic", "channels_last": False}).config_hash()
    )
    assert on.config_hash() != base.config_hash()  # results differ slightly: never mixed in one run
    with pytest.raises(ConfigError, match="channels_last.*true or false"):
        make_config({"case": "synthetic", "channels_last": "yes"})


def test_channels_last_model_gives_the_same_scores(tmp_path):
    raw = {
        "case": "synthetic",
        "limit": 2,
        "batch_size": 2,
        "maps": ["sg", "gag-85", "ig", "gradcam"],
    }
    plain, fast = make_config(raw), make_config({**raw, "channels_last": True})
    ctx_plain, ctx_fast = build_context(plain), build_context(fast)
    convs = [m for m in ctx_fast.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(
        m.weight.is_contiguous()
        for m in ctx_plain.model.modules()
        if isinstance(m, torch.nn.Conv2d)
    )
    units, _ = plan_run(plain, ctx_plain, None)
    for unit in units:
        a = run_unit(plain, unit, context=ctx_plain).scores
        b = run_unit(fast, unit, context=ctx_fast).scores
        for label in a:
            for metric in ("rcap", "dauc", "iauc"):
                assert b[label][metric] == pytest.approx(a[label][metric], abs=1e-4), (
                    label,
                    metric,
                )
