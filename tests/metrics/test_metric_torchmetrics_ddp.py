"""The torchmetrics Metrics under torch.distributed: two gloo processes on the CPU give the
result of one process on the same images."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchmetrics")

from support.ddp_metrics import SPLITS, run_rank, score  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Each rank's computed results, per (split, with ids)."""
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(run_rank, args=(2, str(tmp / "store"), str(tmp)), nprocs=2, join=True)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(2)]


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].keys() == want[key].keys(), key
        for field in want[key]:
            torch.testing.assert_close(got[key][field], want[key][field], rtol=0, atol=0)


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_ranks_without_ids_give_the_single_process_result(ranks, split):
    """Without ids every image each rank scored counts (padding included), in rank order."""
    r0, r1 = SPLITS[split]
    want = score(r0 + r1, with_ids=False)  # one process, the same batches in rank order
    for rank in ranks:
        _assert_same(rank[(split, False)], want)


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_ranks_with_ids_give_the_single_process_result_on_the_dataset(ranks, split):
    """With ids the ranks' scores come back in dataset order, the padded image counted once."""
    r0, r1 = SPLITS[split]
    want = score(r0 + r1, with_ids=True)
    for rank in ranks:
        _assert_same(rank[(split, True)], want)
    # the dataset in one batch: the same images once each (scores batch-invariant to rounding)
    dataset = score([list(range(7))], with_ids=True)
    for key, res in want.items():
        assert res["ids"].tolist() == list(range(7))
        for field in ("mean", "lo", "hi", "per_image"):
            torch.testing.assert_close(res[field], dataset[key][field], rtol=0, atol=1e-6)


def test_the_interval_does_not_depend_on_the_order_of_the_images(ranks):
    """Interleaved ranks deliver the images in another order than one process: same interval."""
    interleaved = ranks[0][("interleaved-padded", False)]
    r0, r1 = SPLITS["interleaved-padded"]
    assert [i for b in r0 + r1 for i in b] != sorted(i for b in r0 + r1 for i in b)
    reordered = score(sorted(r0 + r1, key=len), with_ids=False)
    for key, got in interleaved.items():
        for field in ("mean", "lo", "hi"):
            assert float(got[field]) == float(reordered[key][field]), (key, field)
