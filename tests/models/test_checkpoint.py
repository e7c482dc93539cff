"""The one checkpoint reader: every usual layout of a weights file loads, the same way, into a
built-in case's network and into a model spec; broken files are one clear error for both."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import timm
import torch
from torch import nn
from torchvision.models import DenseNet

from absgrad.cases.synthetic import SynthNet, synthetic_model
from absgrad.errors import MissingFileError
from absgrad.models import CheckpointError, load_model, read_state_dict, strip_prefixes
from absgrad.models.builtin import densenet161_places365, rename_densenet_keys

Layout = Callable[[dict[str, torch.Tensor]], object]


def _prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


#: how training code saves weights: name -> state dict -> the object torch.save writes
LAYOUTS: dict[str, Layout] = {
    "plain": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3, "best_acc": 0.9},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
    "model": lambda sd: {"model": sd, "args": {"lr": 0.1}},
    "net": lambda sd: {"net": sd},
    "module": lambda sd: {"module": sd},
    "state_dict_ema": lambda sd: {"state_dict_ema": sd, "epoch": 1},
    "module.": lambda sd: _prefixed("module.", sd),  # nn.DataParallel / DDP
    "model.": lambda sd: {"state_dict": _prefixed("model.", sd)},  # Lightning
    "_orig_mod.": lambda sd: {"model": _prefixed("_orig_mod.", sd)},  # torch.compile
    "module.model.": lambda sd: {"model_state_dict": _prefixed("module.model.", sd)},
}


def _save(obj: object, path, legacy: bool = False):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _small_densenet() -> DenseNet:
    return DenseNet(
        growth_rate=4, block_config=(1, 1, 1, 1), num_init_features=8, bn_size=2, num_classes=365
    )


def _csail_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 2017 CSAIL key names (``norm.1`` for ``norm1``): the Places365 builder's own detail."""
    return {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
        for k, v in sd.items()
    }


def _same_state(model: nn.Module, ref: nn.Module) -> None:
    got, want = model.state_dict(), ref.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.fixture(scope="module")
def refs():
    torch.manual_seed(0)
    return {
        "synthetic": SynthNet().eval(),
        "places365": _small_densenet().eval(),
        "spec": timm.create_model("test_resnet", num_classes=4).eval(),
    }


#: the three loaders that read weights: two built-in builders and a model spec
LOADERS: dict[str, Callable[[object], nn.Module]] = {
    "synthetic": lambda p: synthetic_model(p),
    "places365": lambda p: densenet161_places365(p, arch=_small_densenet),
    "spec": lambda p: load_model("timm:test_resnet", p, size=(32, 32)),
}


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("layout", [*LAYOUTS, "legacy-format", "torchscript"])
def test_every_layout_loads_into_builtin_builders_and_model_specs(tmp_path, refs, loader, layout):
    ref = refs[loader]
    sd = ref.state_dict()
    if loader == "places365":
        sd = _csail_keys(sd)  # the real checkpoint's names; the builder renames them
    path = tmp_path / f"{layout}.pth"
    if layout == "torchscript":
        x = torch.rand(1, 3, 32, 32)
        torch.jit.save(torch.jit.trace(ref, x), path)
    elif layout == "legacy-format":  # torch.save before 1.6 (not a zip file)
        _save({"state_dict": _prefixed("module.", sd)}, path, legacy=True)
    else:
        _save(LAYOUTS[layout](sd), path)
    _same_state(LOADERS[loader](path), ref)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_broken_files_are_one_clear_error_for_every_loader(tmp_path, loader):
    load = LOADERS[loader]
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth is an empty file"):
        load(tmp_path / "empty.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read .* checkpoint .*junk.pth"):
        load(tmp_path / "junk.pth")
    _save({"epoch": 1, "optimizer": {"lr": 0.1}}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match=r"holds no state dict: entries \['epoch', 'optim"):
        load(tmp_path / "nostate.pth")
    _save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds no state dict: .* got list"):
        load(tmp_path / "list.pth")
    with pytest.raises(MissingFileError, match="absent.pth"):
        load(tmp_path / "absent.pth")


def test_read_state_dict_keeps_keys_and_strip_prefixes_only_where_it_matches():
    sd = {"conv.weight": torch.zeros(1), "fc.bias": torch.ones(1)}
    own = set(sd)
    # a prefix that is part of the model's own names stays
    inner = {"model.conv.weight": torch.zeros(1)}
    assert strip_prefixes(inner, {"model.conv.weight"}) == inner
    for prefix in ("module.", "model.", "_orig_mod.", "module._orig_mod.", "model.module."):
        assert strip_prefixes(_prefixed(prefix, sd), own).keys() == own
    # an adapter is scored after stripping: old DenseNet names under module.
    old = {"module.features.denseblock1.denselayer1.norm.1.weight": torch.zeros(1)}
    got = strip_prefixes(
        old, {"features.denseblock1.denselayer1.norm1.weight"}, rename_densenet_keys
    )
    assert list(got) == ["features.denseblock1.denselayer1.norm1.weight"]


def test_python2_pickles_are_read_as_latin1(tmp_path, monkeypatch):
    """A checkpoint pickled by Python 2 fails with UnicodeDecodeError; it is read as latin-1."""
    path = _save({"w": torch.ones(2)}, tmp_path / "py2.pth")
    real = torch.load
    calls = []

    def load(*a, **k):
        calls.append(k.get("encoding"))
        if k.get("encoding") != "latin1":
            raise UnicodeDecodeError("ascii", b"\xe9", 0, 1, "ordinal not in range(128)")
        return real(*a, **{n: v for n, v in k.items() if n != "encoding"})

    monkeypatch.setattr(torch, "load", load)
    assert torch.equal(read_state_dict(path)["w"], torch.ones(2))
    assert calls == [None, "latin1"]
