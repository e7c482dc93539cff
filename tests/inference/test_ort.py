"""absgrad.inference.ort and the ``onnx`` engine: ONNX Runtime gives the eager model's probabilities in
one padded chunk shape, refuses a model it exports wrongly, and falls back to eager with a
warning; missing packages and impossible settings get errors that name them."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import absgrad.inference.ort as ort_mod
from absgrad.inference.engine import Engine, EngineError
from absgrad.inference.ort import OrtError, OrtForward
from support.engines import assert_falls_back_once, assert_metrics_agree, eager_logits

pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed (pip install 'absgrad[onnx]')"
)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU6(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise, as in EfficientNet
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    )


def test_exported_model_gives_the_eager_logits_at_its_shape():
    model = tiny_model().eval()
    x = torch.randn(4, 3, 8, 8)
    fwd = OrtForward(model, x)
    assert torch.allclose(fwd(x), eager_logits(model, x), atol=1e-5)
    y = torch.randn(4, 3, 8, 8)  # another input of the same shape
    assert torch.allclose(fwd(y), eager_logits(model, y), atol=1e-5)
    assert 0 <= fwd.difference < 1e-5
    with pytest.raises(OrtError, match=r"takes \(4, 3, 8, 8\), got \(2, 3, 8, 8\)"):
        fwd(x[:2])


def test_onnx_engine_pads_to_one_shape_exports_once_and_restores_flags(monkeypatch):
    model = tiny_model().train()
    exports = []
    real = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: exports.append(1) or real(*a, **k))
    eng = Engine(model, "onnx", chunk=4)
    for n in (4, 7, 1, 9):
        x = torch.randn(n, 3, 8, 8)
        out = eng(x)
        assert out.shape == (n, 5)
        assert torch.allclose(out, eager_logits(model, x), atol=1e-5)
    assert len(exports) == 1 and eng.compiled and eng.kind == "onnx"
    assert eng.stats["padded"] == (4 - 3) + (4 - 1) + (4 - 1)
    assert eng.stats["ort_difference"] < 1e-5 and eng.stats["compile_s"] > 0
    assert all(m.training for m in model.modules())


def test_metrics_score_the_same_through_the_onnx_engine():
    model = tiny_model().eval()
    assert_metrics_agree(model, Engine(model, "onnx", chunk=8))


def test_export_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def no_export(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::weird")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    model = tiny_model()
    eng = Engine(model, "onnx", chunk=4)
    match = "ONNX Runtime failed.*could not export.*aten::weird.*eagerly"
    assert_falls_back_once(eng, model, torch.randn(5, 3, 8, 8), match)


def test_an_export_that_disagrees_with_pytorch_is_not_used(monkeypatch):
    # an exporter that mistranslates the model (here: doubled logits) is caught by the check
    real = OrtForward.__call__
    monkeypatch.setattr(OrtForward, "__call__", lambda self, x: 2 * real(self, x))
    model = tiny_model().eval()
    with pytest.raises(
        ort_mod.OrtMismatch, match="differ from PyTorch's by .* \\(more than 0.0001\\)"
    ):
        OrtForward(model, torch.randn(2, 3, 8, 8))
    eng = Engine(model, "onnx", chunk=2)
    assert_falls_back_once(eng, model, torch.randn(2, 3, 8, 8), "ONNX Runtime failed.*OrtMismatch")


def test_missing_packages_and_impossible_settings_are_named(monkeypatch):
    model = tiny_model()
    with pytest.raises(EngineError, match="fp32 only"):
        Engine(model, "onnx", precision="bf16")
    with pytest.raises(EngineError, match="runs on the CPU; the model is on meta"):
        Engine(tiny_model().to("meta"), "onnx")
    real = ort_mod.importlib.util.find_spec
    monkeypatch.setattr(
        ort_mod.importlib.util,
        "find_spec",
        lambda name: None if name == "onnxruntime" else real(name),
    )
    assert not ort_mod.available()
    with pytest.raises(
        OrtError, match=r"needs the onnxruntime package\(s\): pip install 'absgrad\[onnx\]'"
    ):
        Engine(model, "onnx")


def test_a_session_that_cannot_run_falls_back_with_the_reason(monkeypatch):
    import onnxruntime

    def broken(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH")

    monkeypatch.setattr(onnxruntime, "InferenceSession", broken)
    with pytest.raises(OrtError, match="cannot run the exported Sequential.*INVALID_GRAPH"):
        OrtForward(tiny_model().eval(), torch.randn(2, 3, 8, 8))
    model = tiny_model()
    eng = Engine(model, "onnx", chunk=2)
    assert_falls_back_once(
        eng, model, torch.randn(3, 3, 8, 8), "ONNX Runtime failed.*INVALID_GRAPH"
    )


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vit_tiny_patch16_224", {"img_size": 64}),
        ("swin_tiny_patch4_window7_224", {"img_size": 64, "window_size": 2}),
        ("convnext_atto", {}),
    ],
)
def test_vision_transformers_and_convnext_export_and_agree(name, kwargs):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=7, **kwargs).eval()
    x = torch.randn(3, 3, 64, 64)
    eng = Engine(model, "onnx", chunk=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback
        out = eng(x)
    assert eng.kind == "onnx" and eng.compiled
    want = eager_logits(model, x)
    assert torch.allclose(out, want, atol=1e-4, rtol=1e-4), float((out - want).abs().max())
