"""absgrad.metrics.dedupe: each distinct perturbed image is scored once, and the scores do not change.

Checked against the functional metrics (which score every perturbed image), and by the
property that defines the keys: two rows with the same key are the same image.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from absgrad import metrics as M
from absgrad.metrics.curves import curve_inputs
from absgrad.metrics.dedupe import DedupQueue, ProbCache
from absgrad.metrics.grid import rcap_percentiles
from absgrad.metrics.recover import rcap_inputs
from absgrad.metrics.thresholds import sorted_values
from absgrad.protocol.scoring import EvalSettings, score_many

NORM = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 4),
    ).eval()


def the_maps(b: int = 3, h: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    smooth = torch.rand(b, h, h, generator=g)
    rectified = (torch.randn(b, h, h, generator=g)).clamp(min=0)  # about half zeros: ties
    rectified /= rectified.amax(dim=(1, 2), keepdim=True)
    coarse = torch.randint(0, 3, (b, h, h), generator=g).float() / 2  # three values only
    flat_top = smooth.clone()
    flat_top[:, : h // 2] = 1.0  # half the pixels share the maximum
    return {
        "smooth": smooth,
        "same": smooth.clone(),  # equal by value (e.g. GB "both" hook and VG)
        "neg-zero": rectified * -0.0 + rectified,  # equal values, some -0.0 entries
        "rectified": rectified,
        "coarse": coarse,
        "flat-top": flat_top,
        "constant": torch.zeros(b, h, h),
    }


@pytest.fixture
def setup():
    torch.manual_seed(1)
    x = torch.randn(3, 3, 8, 8)
    target = torch.tensor([0, 2, 1])
    return tiny_model(), x, target


def test_scores_equal_the_metrics_computed_image_by_image(setup):
    model, x, target = setup
    maps = the_maps()
    settings = EvalSettings(
        normalization=NORM, lower_bound=0.0, interval=0.25, auc_steps=8, batch_size=5
    )
    cache = ProbCache()
    got = score_many(model, x, target, maps, ("rcap", "dauc", "iauc"), settings, cache=cache)
    for label, m in maps.items():
        r = M.rcap(
            model, x, target, m, lower_bound=0.0, interval=0.25, normalization=NORM, batch_size=5
        )
        a = M.deletion_insertion(model, x, target, m, steps=8, normalization=NORM, batch_size=5)
        assert got[label]["rcap"] == pytest.approx(r.score.tolist(), abs=1e-6), label
        for key, want in (
            ("rcap_prob", r.prob),
            ("deletion", a.deletion),
            ("insertion", a.insertion),
        ):
            diff = (torch.tensor(got[label][key], dtype=torch.float64) - want.double()).abs().max()
            assert float(diff) < 1e-6, (label, key)
    per_map = 3 * (4 + 8 + 8)
    assert cache.stats["requested"] == len(maps) * per_map
    # "same" and "neg-zero" cost nothing, ties and the constant map save more
    assert cache.stats["computed"] <= (len(maps) - 2) * per_map - 3 * 4


def test_a_shared_cache_scores_a_repeated_map_without_forward_passes(setup):
    model, x, target = setup
    maps = the_maps()
    settings = EvalSettings(normalization=NORM, batch_size=4)
    clean = M.target_probs(model, x, target)
    blurred = M.target_probs(model, M.blurred(x), target)
    cache = ProbCache()
    first = score_many(
        model,
        x,
        target,
        {"smooth": maps["smooth"]},
        ("rcap", "dauc", "iauc"),
        settings,
        cache=cache,
        clean_probs=clean,
        blurred_probs=blurred,
    )
    before = cache.stats["computed"]
    second = score_many(
        model,
        x,
        target,
        {"vg": maps["same"]},
        ("rcap", "dauc", "iauc"),
        settings,
        cache=cache,
        clean_probs=clean,
        blurred_probs=blurred,
    )
    assert cache.stats["computed"] == before  # every image of the second call was known
    for metric in ("rcap", "dauc", "iauc", "deletion", "insertion"):
        assert second["vg"][metric] == first["smooth"][metric]


def test_rows_with_one_key_are_one_image(setup):
    """The keys' definition: equal keys <=> the same perturbed image (and target); the special
    keys are the clean, blurred, black and zero images."""
    _, x, target = setup
    base = M.blurred(x)
    clean_p, blur_p = torch.rand(3), torch.rand(3)
    mean, std = (torch.tensor(v, dtype=torch.float64) for v in NORM)
    black = ((0 - mean) / std).float()[:, None, None].expand(3, 8, 8)
    percentiles = rcap_percentiles(0.0, 0.125)
    for m in the_maps().values():
        for first in (0, 1):
            q = DedupQueue(nn.Identity(), 4, x, target, normalization=NORM)
            ordered = sorted_values(m)
            r = rcap_inputs(x, m, percentiles, NORM, ordered=ordered)
            a = curve_inputs(
                x, m, base, 6, *((clean_p, blur_p) if first else (None, None)), ordered=ordered
            )
            images = torch.cat([r.images, a.images])
            targets = torch.cat(
                [target.repeat_interleave(len(percentiles)), target.repeat_interleave(a.per_image)]
            )
            keys = q.rcap_keys(m, ordered, percentiles) + q.curve_keys(m, ordered, 6, first, first)
            assert len(keys) == images.shape[0]
            seen: dict = {}
            for key, img, t in zip(keys, images, targets, strict=True):
                if key in seen:
                    assert torch.equal(seen[key][0], img) and seen[key][1] == t, key
                seen[key] = (img, t)
                i = int(t)  # targets are distinct per image here
                row = target.tolist().index(i)
                special = {
                    "clean": x[row],
                    "blurred": base[row],
                    "black": black,
                    "zeros": torch.zeros(3, 8, 8),
                }
                if key[0] in special:
                    assert torch.equal(img, special[key[0]].to(img.dtype)), key[0]
            distinct_images = {
                img.numpy().tobytes() + bytes([int(t)])
                for img, t in zip(images, targets, strict=True)
            }
            assert len(set(keys)) == len(
                distinct_images
            )  # and no two different keys share an image


def test_bad_key_count_is_refused(setup):
    _, x, target = setup
    q = DedupQueue(nn.Identity(), 4, x, target)
    with pytest.raises(ValueError, match="2 keys for 3 images"):
        q.put(x, target, ["a", "b"])


def test_input_keys_are_kept_per_tensor_and_follow_in_place_changes():
    cache = ProbCache()
    x, t = torch.randn(2, 3, 4, 4), torch.tensor([0, 1])
    first = cache.image_keys(x, t)
    assert cache.image_keys(x, t) == first
    assert cache.image_keys(x.clone(), t) == first  # keys come from the values
    assert cache.image_keys(x, torch.tensor([0, 2]))[1] != first[1]  # and the targets
    x[1, 0, 0, 0] += 1.0  # changed in place: image 1's key changes, image 0's does not
    changed = cache.image_keys(x, t)
    assert changed[0] == first[0] and changed[1] != first[1]
    with torch.inference_mode():  # inference tensors have no version counter: not kept
        xi = x.clone()
        assert cache.image_keys(xi, t) == changed
        xi[0] += 1.0
        assert cache.image_keys(xi, t)[0] != changed[0]


def test_map_keys_follow_in_place_changes_of_the_map(setup):
    _, x, target = setup
    q = DedupQueue(nn.Identity(), 4, x, target)
    m = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(5))

    def map_digests(keys):  # the map digests in the keys of the thresholded images
        return {k[3] for k in keys if k[0] in ("del", "ins")}

    first = q.curve_keys(m, sorted_values(m), 10, 0, 0)
    assert q.rcap_keys(m, sorted_values(m), rcap_percentiles(0.5, 0.1))  # same map, kept digests
    assert q.curve_keys(m.clone(), sorted_values(m), 10, 0, 0) == first  # keys come from values
    m[1, 0, 0] += 1e-3  # changed in place: image 1's digest changes, the others' do not
    changed = q.curve_keys(m, sorted_values(m), 10, 0, 0)
    assert len(map_digests(first)) == 3 and len(map_digests(first) & map_digests(changed)) == 2
