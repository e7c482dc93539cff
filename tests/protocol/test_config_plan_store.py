"""Configs (validation, hashing, shipped files), the plan of units, the atomic store, the worker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from absgrad.protocol.config import (
    ConfigError,
    load_config_file,
    make_config,
    shipped_configs,
    to_yaml,
)
from absgrad.protocol.plan import Group, Unit, UnitResult, group_specs, make_plan
from absgrad.protocol.store import RunDirError, RunStore, atomic_write_bytes
from absgrad.protocol.worker import build_context, run_unit


def test_shipped_configs_are_the_papers_experiments():
    assert {"imagenet-s", "isic", "places365", "demo", "synthetic"} <= set(shipped_configs())
    for name in shipped_configs():
        cfg = make_config(load_config_file(name))
        assert cfg.n_samples == 20 and cfg.ig_trials == 2 and cfg.ig_steps == 5
        assert cfg.rcap_lower_bound == 0.5 and cfg.rcap_interval == 0.1 and cfg.auc_steps == 10
    ins = make_config(load_config_file("imagenet-s"))
    assert ins.case == "imagenet-s" and ins.threshold == 0.9 and "lc_dice" in ins.metrics
    assert ins.reversal["gb"] == (0.03, 0.1)
    assert make_config(load_config_file("isic")).reversal["gb"] == (0.005, 0.1)


def test_hash_ignores_device_and_forward_batch_but_not_settings():
    base = make_config({"case": "synthetic"})
    assert (
        make_config({"case": "synthetic"}, {"device": "cuda", "eval_batch_size": 99}).config_hash()
        == base.config_hash()
    )
    for change in (
        {"n_samples": 10},
        {"seed": 1},
        {"limit": 3},
        {"batch_size": 8},
        {"tables": [1]},
    ):
        assert make_config({"case": "synthetic"}, change).config_hash() != base.config_hash(), (
            change
        )


def test_yaml_sections_and_overrides():
    cfg = make_config(
        {
            "case": "demo",
            "rcap": {"interval": 0.2},
            "ig": {"trials": 3},
            "sampling": {"spread": 0.2},
        },
        {"limit": 5, "seed": None},
    )
    assert (cfg.rcap_interval, cfg.ig_trials, cfg.spread, cfg.limit, cfg.seed) == (
        0.2,
        3,
        0.2,
        5,
        0,
    )
    assert make_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    import yaml

    assert make_config(yaml.safe_load(to_yaml(cfg))).config_hash() == cfg.config_hash()


def test_device_auto_and_deterministic_round_trip_and_are_not_hashed():
    import torch
    import yaml

    from absgrad.protocol.config import check_device

    base = make_config({"case": "synthetic"})
    assert base.device == "auto" and base.deterministic is True  # the defaults
    for change in ({"device": "cpu"}, {"deterministic": False}, {"deterministic": True}):
        cfg = make_config({"case": "synthetic"}, change)
        assert cfg.config_hash() == base.config_hash(), change  # how it runs, not what
        assert make_config(yaml.safe_load(to_yaml(cfg))) == cfg
        assert make_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert make_config({"case": "synthetic", "deterministic": False}).deterministic is False
    mps = torch.backends.mps.is_available()
    best = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    assert check_device("device", "auto") == best
    assert check_device("device", "cpu") == "cpu"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"case": "x", "ig": {"trials": 1}}, "'ig_trials'"),
        ({"case": "x", "threshold": 1.5}, "'threshold'"),
        ({"case": "x", "device": "tpu"}, "'device'"),
        ({"case": "x", "device": "autos"}, "'device'"),
        ({"case": "x", "deterministic": "yes"}, "'deterministic'"),
        ({"case": "x", "save_maps": "some"}, "'save_maps'"),
        ({"case": "x", "metrics": []}, "'metrics'"),
        ({"case": "x", "sampling": 3}, "'sampling'"),
    ],
)
def test_invalid_values_name_their_field(raw, field):
    with pytest.raises(ConfigError, match=f"config field {field}"):
        make_config(raw)


def _groups() -> list[Group]:
    return [Group("sg", ("sg", "gag-85"), ("sg-r",)), Group("vg", ("vg",), ())]


def test_plan_is_batch_major_with_one_seed_per_batch():
    cfg = make_config({"case": "synthetic"}, {"batch_size": 2, "save_maps": 2})
    units = make_plan(cfg, _groups(), [5, 7, 9], ["a", "b", "c"])
    assert [u.id for u in units] == ["b00000-sg", "b00000-vg", "b00001-sg", "b00001-vg"]
    assert units[0].indices == (5, 7) and units[2].image_ids == ("c",)
    assert units[0].seed == units[1].seed != units[2].seed
    assert [u.first_of_batch for u in units] == [True, False, True, False]
    assert [u.save_maps for u in units] == [
        True,
        True,
        False,
        False,
    ]  # the first 2 images: batch 0 only
    assert Unit.from_dict(json.loads(json.dumps(units[0].to_dict()))) == units[0]
    other = make_plan(
        make_config({"case": "synthetic"}, {"batch_size": 2, "seed": 1}),
        _groups(),
        [5, 7, 9],
        list("abc"),
    )
    assert other[0].seed != units[0].seed


def test_gradient_chunk_sets_every_sampler_but_guided_ig_above_the_unit_batch():
    from absgrad.protocol.catalogue import REVERSED_BASES
    from absgrad.protocol.plan import resolve_specs

    def sizes(**extra):
        cfg = make_config({"case": "synthetic"}, {"batch_size": 4, **extra})
        specs = resolve_specs(cfg, dict.fromkeys(REVERSED_BASES, (0.5, 0.1)), None)
        by_method: dict[str, set[int]] = {}
        for s in specs.values():
            if s.method is not None:
                by_method.setdefault(s.method, set()).add(s.params["batch_size"])
        return by_method

    # Guided IG's calls carry one image per unit image: a larger chunk would be padding only
    big = sizes(grad_batch_size=16)
    assert big["sg"] == big["ig"] == big["vg"] == {16} and big["guidedig"] == {4}
    small = sizes(grad_batch_size=2)
    assert small["sg"] == small["guidedig"] == {2}
    assert sizes()["guidedig"] == sizes()["sg"] == {4}  # auto: the unit's batch until measured


def test_atomic_write_replaces_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "d" / "f.json"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


def _result(unit: Unit, value: float) -> UnitResult:
    return UnitResult(
        unit=unit,
        scores={"vg": {"rcap": [value] * len(unit.indices)}},
        clean_prob=[0.9] * len(unit.indices),
        blurred_prob=[0.1] * len(unit.indices),
        timing={"total": 0.0},
        maps={"vg": np.zeros((len(unit.indices), 4, 4), np.float16)},
        images=np.zeros((len(unit.indices), 4, 4, 3), np.uint8),
    )


def test_store_writes_a_unit_once_and_cleans_leftovers(tmp_path):
    cfg = make_config({"case": "synthetic"})
    unit = make_plan(cfg, [Group("vg", ("vg",), ())], [0, 1], ["a", "b"])[0]
    store = RunStore(tmp_path)
    store.write(_result(unit, 0.5))
    store.write(_result(unit, 0.7))  # a second result for the same unit is dropped
    assert [r["scores"]["vg"]["rcap"] for r in store.records()] == [[0.5, 0.5]]
    assert store.load_maps(unit.id)["vg"].shape == (2, 4, 4)
    assert store.load_images(0).shape == (2, 4, 4, 3)
    (tmp_path / "units" / ".b00001-vg.json.123.tmp").write_text("{half")
    assert store.clean_temporaries() == 1 and store.done_ids() == {unit.id}


def test_store_refuses_a_corrupt_run_file(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not valid JSON"):
        RunStore(tmp_path).check(make_config({"case": "synthetic"}), None)


def test_a_unit_computed_in_a_fresh_context_is_identical():
    """What lets any executor run any unit: (config, unit) alone determines the result."""
    cfg = make_config(
        {"case": "synthetic"},
        {"maps": ["gag-85", "sg-r"], "n_samples": 3, "metrics": ["rcap", "dauc"]},
    )
    ctx = build_context(cfg)
    samples = ctx.case.samples()
    (group,) = group_specs(ctx.specs)
    assert group.labels == ("sg", "gag-85") and group.derived == ("sg-r",)
    assert group.reversals["sg-r"]["source"] == "sg"
    unit = make_plan(cfg, [group], [3, 1, 4], [samples[i].id for i in (3, 1, 4)])[0]
    a = run_unit(cfg, unit, context=ctx)
    b = run_unit(cfg, unit, context=build_context(cfg))
    assert a.scores == b.scores and set(a.scores) == {"sg", "gag-85", "sg-r"}
    assert np.array_equal(a.maps["sg-r"], b.maps["sg-r"])
    assert not np.array_equal(a.maps["sg-r"], a.maps["sg"])  # the reversal did something
    assert (
        len(a.scores["sg"]["deletion"][0]) == 10
        and a.scores["sg"]["deletion"][0][0] == a.clean_prob[0]
    )
    assert a.images.shape == (3, 32, 32, 3) and a.images.dtype == np.uint8


def test_hash_names_the_version_of_the_formulas():
    from absgrad.protocol import config as C

    cfg = make_config({"case": "synthetic"})
    assert cfg.hash_dict()["maps_version"] == C.MAPS_VERSION
    now, old = cfg.config_hash(), C.MAPS_VERSION
    try:
        C.MAPS_VERSION = old - 1  # a run made before the formulas changed is not resumed
        assert make_config({"case": "synthetic"}).config_hash() != now
    finally:
        C.MAPS_VERSION = old
