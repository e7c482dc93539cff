"""The paper's catalogue: the maps of Tables 1-3, their settings, variants and sampler groups."""

from __future__ import annotations

import pytest

from absgrad.protocol.catalogue import TABLE3_VARIANTS, Sampling, paper_maps, table_labels
from absgrad.protocol.plan import group_specs
from support.paper import PAPER_MAPS

REV = {
    "sg": (0.07, 0.1),
    "ig": (0.07, 0.1),
    "guidedig": (0.07, 0.1),
    "blurig": (0.07, 0.1),
    "gb": (0.03, 0.1),
}


@pytest.fixture(scope="module")
def specs():
    return paper_maps(Sampling(), REV)


def test_every_table_map_is_defined(specs):
    """The catalogue declares exactly the paper's maps: as many as counted by hand from its
    tables (support/paper.py: 9 + 13 + 21 = 43), each used by a table."""
    assert len(specs) == PAPER_MAPS
    assert set(specs) == set().union(*(table_labels(t) for t in (1, 2, 3)))
    assert table_labels(1) == [f"gag-{p}" for p in (0, 15, 25, 35, 45, 55, 65, 75, 85)]
    assert len(table_labels(2)) == 14


def test_paper_settings_are_in_the_specs(specs):
    assert (
        specs["gag-85"].params["n_samples"] == 20 and specs["gag-85"].params["percentile"] == 0.85
    )
    assert specs["gag-0"].params["percentile"] == 0.0
    assert specs["ig"].params["n_samples"] == 2 and specs["ig"].params["steps"] == 5
    assert specs["blurig"].params["n_samples"] == specs["guidedig"].params["n_samples"] == 20
    assert (
        specs["sg-g"].params["aggregation"] == "guided"
        and specs["sg-g"].params["processing"] == "raw"
    )
    assert specs["ig-ga"].params == {
        **specs["ig"].params,
        "processing": "abs",
        "aggregation": "guided",
        "percentile": 0.85,
    }
    assert specs["gb"].params["hook"] == "positive" and specs["gb-both"].params["hook"] == "both"
    assert specs["gb-r"].reverse_of == "gb" and specs["gb-r"].reversal == (0.03, 0.1)
    assert specs["sg-r"].reversal == (0.07, 0.1)


#: what each Table 3 variant symbol changes: (processing, aggregation) of sampled methods
VARIANT_RULE = {
    "+": ("pos", "mean"),
    "-": ("neg", "mean"),
    "A": ("abs", "mean"),
    "G": ("raw", "guided"),
    "GA": ("abs", "guided"),
}
#: GB has no samples to guide: its variants are backprop hooks, G and GA fall back to "+"
GB_HOOK = {"+": "positive", "-": "negative", "A": "abs", "G": "positive", "GA": "positive"}


def test_table3_variants_change_only_the_processing_or_the_hook(specs):
    from absgrad.methods.api import make_request

    assert set(TABLE3_VARIANTS) == {"sg", "ig", "guidedig", "blurig", "gb"}
    for base, (base_label, variants) in TABLE3_VARIANTS.items():
        b = make_request(specs[base_label].method, specs[base_label].params)
        assert set(variants) == set(VARIANT_RULE)
        for symbol, label in variants.items():
            v = make_request(specs[label].method, specs[label].params)
            if base == "gb":
                assert b.params["hook"] == "both" and v.params["hook"] == GB_HOOK[symbol], label
                continue
            assert (b.params["processing"], b.params["aggregation"]) == ("raw", "mean"), base
            got = (v.params["processing"], v.params["aggregation"])
            if got == ("abs", "guided") and v.params["percentile"] == 0:
                got = ("abs", "mean")  # GAG-0: a guide at p = 0 is no guide (AbsoluteGrad)
            assert got == VARIANT_RULE[symbol], (base, symbol, label, got)
            assert v.group_key == b.group_key, (base, symbol)  # the same sampler run
            if got[1] == "guided":
                assert v.params["percentile"] == 0.85, label


def test_maps_fall_into_one_group_per_sampler(specs):
    groups = {g.name: g for g in group_specs(specs)}
    assert sorted(groups) == sorted(
        ["sg", "ig", "guidedig", "blurig", "vg", "gb", "gb-neg", "gb-abs", "gb-both", "gradcam"]
    )
    noise = groups["sg"]
    assert len(noise.labels) == 14 and noise.derived == ("sg-r",)
    assert set(noise.labels) >= {"vargrad", "gag-0", "gag-85", "sg-g", "sg-pos", "sg-neg"}
    assert len(groups["ig"].labels) == 6 and groups["ig"].derived == ("ig-r",)
    assert groups["gb"].derived == ("gb-r",)


def test_the_catalogue_declares_base_family_and_reversal_once(specs):
    from absgrad.protocol.catalogue import METHOD_FAMILY, REVERSED_BASES, REVERSED_PAIRS, TABLE2

    for sp in specs.values():
        assert sp.base in METHOD_FAMILY and sp.family == METHOD_FAMILY[sp.base]
        if sp.derived:  # a reversed map belongs to its source's method
            assert specs[sp.reverse_of].base == sp.base and sp.reverse_of in REVERSED_BASES
        elif sp.method != "gag":
            assert sp.method == sp.base
    assert sorted(sp.reverse_of for sp in specs.values() if sp.derived) == sorted(REVERSED_BASES)
    reference = set(TABLE2.reference_rows) - {"gradcam"}
    assert (
        reference
        == {rev for rev, _ in REVERSED_PAIRS}
        == {lb for _, lb in TABLE2.rows if specs[lb].derived}
    )
    assert specs["gag-85"].as_dict()["family"] == "noise"


def test_run_config_defaults_are_the_papers_sampling():
    import dataclasses

    from absgrad.protocol.config import RunConfig

    cfg = RunConfig(case="synthetic", n_samples=7, ig_steps=3)
    s = Sampling.from_config(cfg, "features")
    assert (s.n_samples, s.ig_steps, s.gradcam_layer) == (7, 3, "features")
    base = Sampling.from_config(RunConfig(case="synthetic"))
    assert base == dataclasses.replace(Sampling(), gradcam_layer=None)
    assert Sampling().n_samples == 20 and Sampling().percentile == 0.85
