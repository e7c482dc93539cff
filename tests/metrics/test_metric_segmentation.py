"""Log-Cosh Dice, MAE, the paper's sqrt-MAE and the pointing game against loops."""

from __future__ import annotations

import math

import pytest
import torch

from absgrad.metrics import lc_dice, mae, mae_sqrt_paper, pointing_game


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(3, 11, 13, generator=g)
    masks = torch.rand(3, 11, 13, generator=g) > 0.6
    return maps, masks


def _loop_sums(m, s):
    sm = ss = inter = absdiff = 0.0
    n = 0
    for row_m, row_s in zip(m.tolist(), s.float().tolist(), strict=True):
        for a, b in zip(row_m, row_s, strict=True):
            sm += a
            ss += b
            inter += a * b
            absdiff += abs(a - b)
            n += 1
    return sm, ss, inter, absdiff / n


def test_lc_dice_and_mae_match_loops(pair):
    maps, masks = pair
    dice_ours, mae_ours = lc_dice(maps, masks), mae(maps, masks)
    sqrt_ours = mae_sqrt_paper(maps, masks)
    for i in range(3):
        sm, ss, inter, mean_abs = _loop_sums(maps[i], masks[i])
        d = (2 * inter + 1) / (ss + sm + 1)
        assert dice_ours[i].item() == pytest.approx(math.log(math.cosh(1 - d)), abs=1e-6)
        assert mae_ours[i].item() == pytest.approx(mean_abs, abs=1e-6)
        assert sqrt_ours[i].item() == pytest.approx(math.sqrt(mean_abs), abs=1e-6)


def test_masks_as_float_or_b1hw_give_the_same(pair):
    maps, masks = pair
    assert torch.equal(lc_dice(maps, masks), lc_dice(maps[:, None], masks.float()[:, None]))
    assert torch.equal(mae(maps, masks), mae(maps, masks.long()))


def test_perfect_map_scores_best(pair):
    _, masks = pair
    perfect = masks.float()
    assert mae(perfect, masks).tolist() == [0.0, 0.0, 0.0]
    assert (lc_dice(perfect, masks) < 1e-4).all()
    inverted = 1 - perfect
    assert (lc_dice(inverted, masks) > lc_dice(perfect, masks)).all()


def _pointing_loop(m, s, top_percent=30):
    vals = sorted(v for row in m.tolist() for v in row)
    n = len(vals)
    q = vals[n * (100 - top_percent) // 100 - 1]
    pts = [(r, c) for r, row in enumerate(m.tolist()) for c, v in enumerate(row) if v > q]
    if not pts:
        pts = [
            (r, c) for r, row in enumerate(m.tolist()) for c, v in enumerate(row) if v == vals[-1]
        ]
    rr = math.floor(sum(p[0] for p in pts) / len(pts) + 0.5)
    cc = math.floor(sum(p[1] for p in pts) / len(pts) + 0.5)
    return float(s.tolist()[rr][cc])


def test_pointing_game_matches_loops(pair):
    maps, masks = pair
    ours = pointing_game(maps, masks)
    assert ours.tolist() == [_pointing_loop(maps[i], masks[i]) for i in range(3)]


def test_pointing_game_behaviour():
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 2:8, 12:18] = True
    on = torch.zeros(1, 20, 20)
    on[0, 3:7, 13:17] = 1.0
    off = torch.zeros(1, 20, 20)
    off[0, 12:16, 2:6] = 1.0
    assert pointing_game(on, mask).tolist() == [1.0]
    assert pointing_game(off, mask).tolist() == [0.0]
    # constant map: the tied maximum is everything, centroid = image centre (outside the mask)
    assert pointing_game(torch.ones(1, 20, 20), mask).tolist() == [0.0]
