"""ONNX Runtime as a forward engine: the model exported once to ONNX and run on the CPU.

On a CPU, ONNX Runtime runs a fixed CNN's inference pass faster than eager PyTorch and than
``torch.compile`` (EfficientNet-Lite0 at 224 px, 16 images, 2 threads: about 4 ms per image
against 7 compiled and 11 eager; docs/performance.md), and exporting takes about a second
instead of a compile's tens of seconds. :class:`OrtForward` exports a model at one input shape
(a static graph is about 1.6x faster than one with a dynamic batch axis, so the engine pads
its chunks to that shape) and checks the exported model against eager PyTorch on that input
before it is used: logits that differ raise :class:`OrtMismatch`, never a silent wrong score.

Needs the ``onnxruntime`` and ``onnx`` packages (``pip install 'absgrad[onnx]'``; both are in
requirements.txt). Gradients are not available here: the gradient passes stay in PyTorch.
"""

from __future__ import annotations

import importlib.util
import io
import warnings

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError, first_line

#: Largest |softmax difference| between the exported and the eager model on the check input.
#: ONNX Runtime's fp32 kernels sum in another order than PyTorch's: about 1e-6 on Lite0.
TOLERANCE = 1e-4
PACKAGES = ("onnxruntime", "onnx")


class OrtError(AbsgradError):
    """ONNX Runtime is missing, or the model could not be exported or run."""


class OrtMismatch(OrtError):
    """The exported model's outputs differ from the eager model's."""


def available() -> bool:
    """True when ``onnxruntime`` and ``onnx`` can be imported."""
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES)


def require() -> None:
    """Raise :class:`OrtError` naming what to install when ONNX Runtime is missing."""
    missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise OrtError(
            f"engine 'onnx' needs the {' and '.join(missing)} package(s): "
            "pip install 'absgrad[onnx]' (or choose --engine eager/compile)"
        )


def _logits(out: object) -> Tensor:
    """The logits of a model's output (a tensor, or the first tensor of a tuple/list)."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, Tensor):
        raise OrtError(f"the model returns {type(out).__name__}, not a logits tensor")
    return out


class OrtForward:
    """``model`` exported to ONNX at ``example``'s shape, as a callable ``(N, C, H, W) ->
    (N, K)`` logits run by ONNX Runtime on the CPU; ``N`` must equal the example's.

    Args:
        model: the classifier, in eval mode, on the CPU.
        example: an input batch ``(N, C, H, W)`` of the shape every call will have; the
            export is checked against eager PyTorch on it (:data:`TOLERANCE`).
        threads: ONNX Runtime's intra-op threads (default: PyTorch's thread count).

    Raises :class:`OrtError` if the export fails and :class:`OrtMismatch` if the exported
    model disagrees with the eager one.
    """

    def __init__(self, model: nn.Module, example: Tensor, threads: int | None = None) -> None:
        require()
        import onnxruntime as ort

        if example.device.type != "cpu":
            raise OrtError(
                f"engine 'onnx' runs on the CPU; the model is on {example.device.type} "
                "(use engine compile or eager there)"
            )
        example = example.detach().float().contiguous()
        self.shape = tuple(example.shape)
        buffer = io.BytesIO()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
                torch.onnx.export(
                    model,
                    (example,),
                    buffer,
                    input_names=["x"],
                    output_names=["logits"],
                    dynamo=False,
                )
        except Exception as err:  # noqa: BLE001 - any exporter failure is reported as one
            raise OrtError(
                f"could not export {type(model).__name__} to ONNX ({type(err).__name__}: {first_line(err, None)})"
            ) from err
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: the gradient passes share the cores with this pool
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        with torch.no_grad():
            want = _logits(model(example)).float()
        try:
            self.session = ort.InferenceSession(
                buffer.getvalue(), options, providers=["CPUExecutionProvider"]
            )
            self.input = self.session.get_inputs()[0].name
            got = self(example)
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own exception types
            raise OrtError(
                f"ONNX Runtime cannot run the exported {type(model).__name__} ({type(err).__name__}: {first_line(err, None)})"
            ) from err
        if got.shape != want.shape:
            raise OrtMismatch(
                f"the exported model returns {tuple(got.shape)}, PyTorch {tuple(want.shape)}"
            )
        self.difference = float((got.softmax(-1) - want.softmax(-1)).abs().max())
        if not self.difference <= TOLERANCE:
            raise OrtMismatch(
                f"the exported model's probabilities differ from PyTorch's by {self.difference:.2e} "
                f"(more than {TOLERANCE:g})"
            )

    def __call__(self, x: Tensor) -> Tensor:
        """Logits ``(N, K)`` of ``x (N, C, H, W)`` (``N`` as in the example)."""
        if tuple(x.shape) != self.shape:
            raise OrtError(f"the exported model takes {self.shape}, got {tuple(x.shape)}")
        arr = x.detach().float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input: arr})[0])
