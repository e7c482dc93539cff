"""The forward queue: requests of any size share full chunks and come back in order."""

from __future__ import annotations

import pytest
import torch

from absgrad.errors import AbsgradError
from absgrad.metrics import ForwardQueue, blurred, deletion_insertion, target_probs


def _recorded(model):
    sizes: list[int] = []
    handle = model.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    return sizes, handle


@pytest.mark.parametrize("batch_size", [1, 3, 4, 16])
def test_rows_come_back_in_order_in_full_chunks(tiny_model, batch_size):
    g = torch.Generator().manual_seed(3)
    requests = [torch.randn(n, 3, 12, 12, generator=g) for n in (5, 0, 2, 7, 1)]
    targets = [torch.randint(0, 5, (r.shape[0],), generator=g) for r in requests]
    sizes, handle = _recorded(tiny_model)
    with torch.inference_mode():
        queue = ForwardQueue(tiny_model, batch_size)
        rows = [queue.put(r, t) for r, t in zip(requests, targets, strict=True)]
        probs = queue.probs()
    handle.remove()
    total = sum(r.shape[0] for r in requests)
    assert sum(sizes) == total
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    assert len(sizes) == -(-total // batch_size)
    for r, t, sl in zip(requests, targets, rows, strict=True):
        with torch.no_grad():
            expected = (
                torch.softmax(tiny_model(r), 1)[torch.arange(r.shape[0]), t]
                if r.shape[0]
                else torch.zeros(0)
            )
        assert sl.stop - sl.start == r.shape[0]
        assert torch.allclose(probs[sl], expected, atol=1e-6)


def test_queue_errors_name_the_problem(tiny_model):
    queue = ForwardQueue(tiny_model, 2)
    with pytest.raises(ValueError, match="targets must have shape"):
        queue.put(torch.zeros(3, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AbsgradError, match="target 9 is out of range for a model with 5 classes"):
        queue.put(torch.zeros(2, 3, 8, 8), torch.tensor([0, 9]))
    nan_model = lambda x: torch.full((x.shape[0], 5), float("nan"))  # noqa: E731
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        ForwardQueue(nan_model, 1).put(torch.zeros(1, 3, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="batch_size"):
        ForwardQueue(tiny_model, 0)


def test_one_point_curves_with_both_r0_given_need_no_pass(tiny_model):
    g = torch.Generator().manual_seed(4)
    x, m = torch.randn(2, 3, 10, 10, generator=g), torch.rand(2, 10, 10, generator=g)
    clean = target_probs(tiny_model, x, [1, 2])
    blur = target_probs(tiny_model, blurred(x), [1, 2])
    sizes, handle = _recorded(tiny_model)
    res = deletion_insertion(
        tiny_model, x, [1, 2], m, steps=1, clean_probs=clean, blurred_probs=blur
    )
    handle.remove()
    assert sizes == []
    assert torch.equal(res.deletion[:, 0], clean) and torch.equal(res.insertion[:, 0], blur)
    assert res.dauc == 0.0 and res.iauc == 0.0
