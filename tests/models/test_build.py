"""Building model specs: each kind builds without downloading, weights files load into it
(TorchScript, safetensors, class count from the checkpoint), wrong checkpoints name their keys,
and dict / tuple / token outputs become (B, K) logits with the module names unchanged.
Published weights by name: tests/models/test_pretrained.py."""

from __future__ import annotations

import textwrap
import warnings

import pytest
import timm
import torch
import torchvision
from torch import nn

from absgrad.methods import explain
from absgrad.models import (
    CheckpointError,
    ModelSpecError,
    build_architecture,
    load_model,
)

X = torch.rand(2, 3, 32, 32)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(timm.models, "load_pretrained", refuse)


def _timm(k: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=k).eval()


def _same_outputs(a: nn.Module, b: nn.Module) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(X), b.eval()(X), rtol=0, atol=0)


def test_unknown_names_are_named():
    with pytest.raises(ModelSpecError, match="timm has no model 'resnet_nope'"):
        build_architecture("timm:resnet_nope")
    with pytest.raises(ModelSpecError, match="torchvision has no model"):
        build_architecture("torchvision:resnet_nope")
    with pytest.raises(ModelSpecError, match="not found"):
        build_architecture("absgrad_no_such_module:make")


def test_torchvision_and_torchscript(tmp_path):
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(num_classes=7).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    _same_outputs(load_model("torchvision:resnet18", tmp_path / "r18.pth", size=(32, 32)), ref)
    torch.jit.save(torch.jit.trace(ref, X), tmp_path / "r18.ts")
    model = load_model("torchvision:resnet18", tmp_path / "r18.ts", size=(32, 32))
    assert isinstance(model, torchvision.models.ResNet)  # a real module: hooks work
    _same_outputs(model, ref)


def test_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    ref = _timm(4)
    save_file(ref.state_dict(), str(tmp_path / "w.safetensors"))
    _same_outputs(load_model("timm:test_resnet", tmp_path / "w.safetensors", size=(32, 32)), ref)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read timm:test_resnet safetensors file"):
        load_model("timm:test_resnet", tmp_path / "bad.safetensors", size=(32, 32))


def test_wrong_checkpoint_lists_keys(tmp_path):
    torch.save(_timm(4).state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="missing keys: .*unexpected keys: ") as e:
        load_model("torchvision:squeezenet1_1", tmp_path / "resnet.pth", size=(32, 32))
    assert "features.0.weight" in str(e.value) and "conv1.0.weight" in str(e.value)
    assert "shares 0 of" in str(e.value)
    sd = _timm(4).state_dict()
    sd["fc.weight"] = sd["fc.weight"][:, :-1]
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="shape mismatches: fc.weight"):
        load_model("timm:test_resnet", tmp_path / "shape.pth", size=(32, 32))


def test_random_weights_warn_loudly_and_use_the_class_count():
    with pytest.warns(UserWarning, match="RANDOM weights"):
        model = load_model("timm:test_resnet", "random", num_classes=5, size=(32, 32))
    assert model(X).shape == (2, 5)
    with pytest.raises(ModelSpecError, match="a factory builds its model itself"):
        load_model("absgrad.cases.synthetic:SynthNet", "random", size=(32, 32))


FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return {"logits": self.head(self.body(x).mean((2, 3))), "extra": x.sum()}

    class TokenNet(nn.Module):
        def __init__(self, cls=True):
            super().__init__()
            torch.manual_seed(3)
            self.embed = nn.Conv2d(3, 4, 8, stride=8)
            self.cls_token = nn.Parameter(torch.randn(1, 1, 4)) if cls else None
            self.head = nn.Linear(4, 6)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)
            if self.cls_token is not None:
                t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)
            return self.head(t)  # (B, N, K): class scores per token

    def dict_net():
        return DictNet()

    def token_net():
        return TokenNet()

    def pooled_token_net():
        return TokenNet(cls=False)

    def not_a_model():
        return 3
    """
)


@pytest.fixture
def factory_file(tmp_path):
    f = tmp_path / "my_models.py"
    f.write_text(FACTORY)
    return f


def test_callable_from_a_file_and_a_module_with_dict_output(factory_file, monkeypatch, tmp_path):
    model = load_model(f"{factory_file}:dict_net", size=(32, 32))
    names = [n for n, _ in model.named_modules()]
    assert names == ["", "body", "body.0", "body.1", "head"]  # Grad-CAM layer names kept
    with torch.no_grad():
        expect = model.head(model.body(X).mean((2, 3)))
        torch.testing.assert_close(model(X), expect)
    assert type(model).__name__ == "DictNet"
    cam = explain(model, X, torch.tensor([0, 1]), "gradcam", layer="body.1")
    assert cam.shape[0] == 2 and torch.isfinite(cam).all()
    monkeypatch.syspath_prepend(str(tmp_path))
    same = load_model("my_models:dict_net", size=(32, 32))
    _same_outputs(same, model)
    torch.save(model.state_dict(), tmp_path / "dict.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a factory with weights: no random-weights warning
        _same_outputs(load_model("my_models:dict_net", tmp_path / "dict.pth", size=(32, 32)), model)
    with pytest.raises(ModelSpecError, match="returned int, not an nn.Module"):
        load_model("my_models:not_a_model", size=(32, 32))


def test_token_outputs(factory_file):
    model = load_model(f"{factory_file}:token_net", size=(32, 32))
    with torch.no_grad():
        t = model.embed(X).flatten(2).transpose(1, 2)
        t = torch.cat([model.cls_token.expand(2, -1, -1), t], 1)
        torch.testing.assert_close(model(X), model.head(t)[:, 0])  # the class token
    pooled = load_model(f"{factory_file}:pooled_token_net", size=(32, 32))
    with torch.no_grad():
        t = pooled.embed(X).flatten(2).transpose(1, 2)
        torch.testing.assert_close(pooled(X), pooled.head(t).mean(1))  # mean over tokens


def test_random_weights_are_the_same_in_every_process():
    """Random weights: Ray workers and resumed runs must all build the same random model."""
    with pytest.warns(UserWarning, match="RANDOM"):
        a = load_model("timm:test_resnet", "random", num_classes=3, size=(32, 32))
    torch.manual_seed(123)  # the caller's generator state does not matter either
    with pytest.warns(UserWarning, match="RANDOM"):
        b = load_model("timm:test_resnet", "random", num_classes=3, size=(32, 32))
    _same_outputs(a, b)
    before = torch.random.get_rng_state()
    with pytest.warns(UserWarning, match="RANDOM"):
        load_model("timm:test_resnet", "random", num_classes=3, size=(32, 32))
    assert torch.equal(before, torch.random.get_rng_state())  # and it is left untouched
