"""The paper's claims, tested on constructed per-image scores with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from absgrad.protocol.catalogue import ABLATION_P, GRADIENT_METHODS, REVERSED_PAIRS, gag_label
from absgrad.report.claims import ClaimSettings, check_claims, rank_pairs, ranking_markdown
from absgrad.report.results import Results

FAST = ClaimSettings(n_resamples=1000, n_permutations=2000)


def make_results(scores: dict[str, dict[str, np.ndarray]]) -> Results:
    """Results from ``{label: {"rcap": (n,), "dauc": (n,), "iauc": (n,)}}`` (flat curves)."""
    n = len(next(iter(scores.values()))["rcap"])
    res = Results(
        meta={"maps": dict.fromkeys(scores), "config": {}}, metrics=("rcap", "dauc", "iauc")
    )
    for lb, s in scores.items():
        flat = np.ones((1, 10))
        res.per_image[lb] = {
            "rcap": s["rcap"],
            "dauc": s["dauc"],
            "iauc": s["iauc"],
            "deletion": s["dauc"][:, None] / 0.9 * flat,  # a flat curve's area is 0.9 x its level
            "insertion": s["iauc"][:, None] / 0.9 * flat,
        }
        res.image_ids[lb] = [f"img{i}" for i in range(n)]
    return res


def scenario(n: int, sign: float, noise: float, seed: int = 0) -> Results:
    """sign +1: every claim holds; -1: every claim fails clearly."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.0, 0.2, n)  # per-image difficulty shared by every map

    def jitter() -> np.ndarray:
        return rng.normal(0, noise, n)

    out: dict[str, dict[str, np.ndarray]] = {}
    for p in ABLATION_P:
        rcap = 0.3 + sign * 0.3 * p + image + jitter()
        dauc_level = 0.3 if sign > 0 else 0.1 + 0.9 * p  # flat in p, or moving a lot
        out[gag_label(p)] = {
            "rcap": rcap,
            "dauc": dauc_level + image / 4 + jitter() / 10,
            "iauc": 0.6 + image / 4 + jitter() / 10,
        }
    for lb in GRADIENT_METHODS[1:]:
        out[lb] = {
            "rcap": 0.3 + 0.25 * (sign < 0) + image + jitter(),
            "dauc": 0.3 + image + jitter(),
            "iauc": 0.6 + image + jitter(),
        }
    for rev, base in REVERSED_PAIRS:
        b = out[base]
        out[rev] = {  # worse on every metric (sign +1) or better (sign -1)
            "rcap": b["rcap"] - sign * 0.1 + jitter(),
            "dauc": b["dauc"] + sign * 0.1 + jitter(),
            "iauc": b["iauc"] - sign * 0.1 + jitter(),
        }
    return make_results(out)


def statuses(res: Results) -> list[str]:
    return [c.status for c in check_claims(res, FAST)]


def test_clear_evidence_confirms_every_claim():
    claims = check_claims(scenario(40, +1, 0.02), FAST)
    assert [c.status for c in claims] == ["confirmed"] * 4
    for c in claims:
        assert c.verdict.startswith("confirmed (p = ") and c.p_value < 0.05 and c.n_images == 40


def test_contrary_evidence_refutes_every_claim():
    claims = check_claims(scenario(40, -1, 0.02), FAST)
    assert [c.status for c in claims] == ["refuted"] * 4
    assert "VarGrad" in claims[1].evidence  # names a method that beats GAG


def test_noisy_images_are_inconclusive():
    # true effects, but per-image noise far larger than them on 12 images
    assert statuses(scenario(12, +1, 0.5, seed=0)) == ["inconclusive"] * 4


def test_few_noisy_images_are_inconclusive():
    claims = check_claims(scenario(3, +1, 0.3, seed=1), FAST)
    assert [c.status for c in claims] == ["inconclusive"] * 4
    assert all(c.verdict == "inconclusive (n = 3 images)" for c in claims)


def test_claims_whose_maps_are_missing_are_not_tested():
    full = scenario(40, +1, 0.02)
    keep = {"gag-85", "sg"}  # GAG and one other gradient method: the ranking claim needs all
    part = make_results(
        {lb: {k: full.per_image[lb][k] for k in ("rcap", "dauc", "iauc")} for lb in keep}
    )
    for lb in keep:  # the flat curves hold the stored DAUC/IAUC
        part.per_image[lb]["deletion"] = full.per_image[lb]["deletion"]
    claims = check_claims(part, FAST)
    assert [c.status for c in claims] == ["not tested"] * 4
    assert "vargrad rcap" in claims[1].evidence and claims[1].verdict == "not tested"


def test_ranking_marks_only_significant_pairs():
    res = scenario(40, +1, 0.02)
    r = rank_pairs(res, settings=FAST)
    assert r is not None and r.order[0] == "gag-85"
    assert len(r.pairs) == len(r.order) * (len(r.order) - 1) // 2
    assert set(r.beats("gag-85")) == set(GRADIENT_METHODS[1:])
    assert r.beats("sg") == []  # the other methods are equal in distribution
    assert all(pw.p_holm >= pw.test.p_value for pw in r.pairs)
    md = ranking_markdown(r)
    assert "| 1 | gag-85 |" in md


def test_per_image_dauc_mean_is_the_area_of_the_mean_curve():
    from absgrad.metrics import auc

    rng = np.random.default_rng(0)
    res = make_results({"m": {k: rng.uniform(0, 1, 7) for k in ("rcap", "dauc", "iauc")}})
    curves = rng.uniform(0, 1, (7, 10))
    res.per_image["m"]["deletion"] = curves
    per_image = res.scores("m", "dauc")
    assert per_image.shape == (7,)
    assert per_image.mean() == pytest.approx(float(auc(curves.mean(axis=0))), abs=1e-12)
    assert res.value("m", "dauc") == pytest.approx(per_image.mean(), abs=1e-15)


def test_non_finite_scores_leave_a_claim_untested_instead_of_failing():
    res = scenario(12, +1, 0.02)
    res.per_image["sg"]["rcap"][3] = np.nan
    claims = check_claims(res, FAST)
    assert claims[1].status == "not tested" and "sg rcap (non-finite scores)" in claims[1].evidence
    r = rank_pairs(res, settings=FAST)
    assert r is not None and "sg" not in r.order
