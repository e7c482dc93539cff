"""The paper's qualitative claims (SPEC §5), checked against a run's results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from absgrad.protocol.paper import ABLATION_P, GRADIENT_METHODS, REVERSED_PAIRS, gag_label
from absgrad.protocol.results import Results
from absgrad.protocol.scoring import METRICS, PAPER_METRICS


@dataclass(frozen=True)
class Claim:
    claim: str
    verdict: str  # "confirmed", "refuted" or "not tested"
    evidence: str


def _spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _rel_range(v: list[float]) -> float:
    m = float(np.mean(np.abs(v)))
    return (max(v) - min(v)) / m if m > 0 else 0.0


def check_claims(res: Results) -> list[Claim]:
    """Verdicts on the four claims; a claim whose maps or metrics are missing is 'not tested'."""
    out: list[Claim] = []
    ps = [p for p in ABLATION_P if res.value(gag_label(p), "rcap") is not None]
    rcap = [res.value(gag_label(p), "rcap") for p in ps]
    c1 = "RCAP rises with p (Table 1)"
    if len(ps) >= 2:
        rho = _spearman(ps, rcap)  # type: ignore[arg-type]
        ok = rho > 0.5 and rcap[-1] > rcap[0]  # type: ignore[operator]
        out.append(
            Claim(
                c1,
                "confirmed" if ok else "refuted",
                f"Spearman(p, RCAP) = {rho:.2f}; GAG-{round(ps[0] * 100)} {rcap[0]:.4f}"
                f" -> GAG-{round(ps[-1] * 100)} {rcap[-1]:.4f}",
            )
        )
    else:
        out.append(Claim(c1, "not tested", "GAG-p maps or RCAP not computed"))

    c2 = "GAG has the best RCAP of the gradient methods (Table 2)"
    vals = {lb: res.value(lb, "rcap") for lb in GRADIENT_METHODS}
    vals = {k: v for k, v in vals.items() if v is not None}
    if "gag-85" in vals and len(vals) > 1:
        best = max(vals, key=lambda k: vals[k])
        others = sorted(((v, k) for k, v in vals.items() if k != "gag-85"), reverse=True)
        out.append(
            Claim(
                c2,
                "confirmed" if best == "gag-85" else "refuted",
                f"GAG {vals['gag-85']:.4f}; next best {others[0][1]} {others[0][0]:.4f}",
            )
        )
    else:
        out.append(Claim(c2, "not tested", "Table 2 maps or RCAP not computed"))

    c3 = "Every reversed map is worse than its original on every metric (Table 2)"
    worse, total, fails = 0, 0, []
    for rev, base in REVERSED_PAIRS:
        for m in (m for m in res.metrics if m in PAPER_METRICS):
            a, b = res.value(rev, m), res.value(base, m)
            if a is None or b is None:
                continue
            total += 1
            ok = a < b if METRICS[m].higher_is_better else a > b
            worse += ok
            if not ok:
                fails.append(f"{rev} {m}")
    if total:
        ev = f"{worse} of {total} (map, metric) pairs worse" + (
            f"; not worse: {', '.join(fails)}" if fails else ""
        )
        out.append(Claim(c3, "confirmed" if worse == total else "refuted", ev))
    else:
        out.append(Claim(c3, "not tested", "reversed maps not computed"))

    c4 = "DAUC/IAUC barely move with p while RCAP does (Table 1)"
    dauc = [res.value(gag_label(p), "dauc") for p in ps]
    iauc = [res.value(gag_label(p), "iauc") for p in ps]
    if len(ps) >= 2 and None not in dauc and None not in iauc:
        r_r = _rel_range(rcap)  # type: ignore[arg-type]
        r_d, r_i = _rel_range(dauc), _rel_range(iauc)  # type: ignore[arg-type]
        ok = r_r > 2 * max(r_d, r_i)
        ev = (
            f"relative range over p: RCAP {r_r:.1%}, DAUC {r_d:.1%}, IAUC {r_i:.1%}"
            " (confirmed when RCAP's > 2x both)"
        )
        out.append(Claim(c4, "confirmed" if ok else "refuted", ev))
    else:
        out.append(Claim(c4, "not tested", "GAG-p maps or DAUC/IAUC not computed"))
    return out


def claims_markdown(claims: list[Claim]) -> str:
    lines = ["| Claim | Verdict | Evidence |", "|---|---|---|"]
    lines += [f"| {c.claim} | {c.verdict} | {c.evidence} |" for c in claims]
    return "\n".join(lines) + "\n"
