"""Plain-loop reference computations for the metric tests.

Written independently of absgrad.metrics: Python lists and loops, percentiles as integer
percents, torchvision's blur. Slow on purpose; use on small images only.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.functional import gaussian_blur as tv_blur


def _flat(map2d: torch.Tensor) -> list[float]:
    return [float(v) for row in map2d.tolist() for v in row]


def _prob(model, image: list, target: int) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([image], dtype=torch.float32))
    row = logits[0].tolist()
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return exps[target] / sum(exps)


def rcap_loop(model, x, target, maps, mean, std, percents=(50, 60, 70, 80, 90)):
    """Per-image (score, hits, probs, valid) lists."""
    model.eval()
    out = []
    for i in range(x.shape[0]):
        img = x[i].tolist()
        m = maps[i].tolist()
        vals = sorted(_flat(maps[i]))
        n = len(vals)
        total = sum(vals)
        channels, h, w = len(img), len(img[0]), len(img[0][0])
        hits, probs, valid = [], [], []
        for pc in percents:
            q = vals[n * pc // 100 - 1]
            rec = [[[0.0] * w for _ in range(h)] for _ in range(channels)]
            kept = 0.0
            count = 0
            for r in range(h):
                for c in range(w):
                    if m[r][c] > q:
                        kept += m[r][c]
                        count += 1
                    for ch in range(channels):
                        pixel = img[ch][r][c] * std[ch] + mean[ch] if m[r][c] > q else 0.0
                        rec[ch][r][c] = (pixel - mean[ch]) / std[ch]
            hits.append(kept / total if count else 0.0)
            probs.append(_prob(model, rec, int(target[i])))
            valid.append(count > 0)
        terms = [hh * pp for hh, pp, v in zip(hits, probs, valid, strict=True) if v]
        score = sum(terms) / len(terms) if terms else 0.0
        out.append((score, hits, probs, valid))
    return out


def curves_loop(model, x, target, maps, steps=10):
    """Per-image deletion and insertion curves as lists (blur: torchvision, kernel 33, sigma 16)."""
    model.eval()
    blurred = tv_blur(x, [33, 33], [16.0, 16.0])
    dels, inss = [], []
    for i in range(x.shape[0]):
        img = x[i].tolist()
        base = blurred[i].tolist()
        m = maps[i].tolist()
        vals = sorted(_flat(maps[i]))
        n = len(vals)
        channels, h, w = len(img), len(img[0]), len(img[0][0])
        d_curve, i_curve = [], []
        for k in range(steps):
            pos = n * (steps - k) // steps - 1
            q = vals[pos] if pos >= 0 else -math.inf
            deleted = [[[0.0] * w for _ in range(h)] for _ in range(channels)]
            inserted = [[[0.0] * w for _ in range(h)] for _ in range(channels)]
            for ch in range(channels):
                for r in range(h):
                    for c in range(w):
                        top = m[r][c] > q
                        deleted[ch][r][c] = 0.0 if top else img[ch][r][c]
                        inserted[ch][r][c] = img[ch][r][c] if top else base[ch][r][c]
            d_curve.append(_prob(model, deleted, int(target[i])))
            i_curve.append(_prob(model, inserted, int(target[i])))
        dels.append(d_curve)
        inss.append(i_curve)
    return dels, inss


def trapezoid(curve: list[float]) -> float:
    """Trapezoid rule with spacing 1/len(curve)."""
    dx = 1.0 / len(curve)
    total = 0.0
    for a, b in zip(curve[:-1], curve[1:], strict=True):
        total += (a + b) / 2 * dx
    return total


def reverse_map(m: torch.Tensor, remain: float, mis: float, seed: int = 0) -> torch.Tensor:
    """SPEC §2.4 reversal of one (H, W) map: keep the top `remain`, swap the next `mis` with the
    bottom `mis`, each side shuffled."""
    g = torch.Generator().manual_seed(seed)
    flat = _flat(m)
    n = len(flat)
    order = sorted(range(n), key=lambda j: -flat[j])
    n_remain, n_mis = int(remain * n), int(mis * n)
    high = order[n_remain : n_remain + n_mis]
    low = order[n - n_mis :]
    high_vals = [flat[j] for j in high]
    low_vals = [flat[j] for j in low]
    perm_h = torch.randperm(n_mis, generator=g).tolist()
    perm_l = torch.randperm(n_mis, generator=g).tolist()
    out = list(flat)
    for slot, j in enumerate(high):
        out[j] = low_vals[perm_l[slot]]
    for slot, j in enumerate(low):
        out[j] = high_vals[perm_h[slot]]
    return torch.tensor(out, dtype=m.dtype).reshape(m.shape)
