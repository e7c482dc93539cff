"""CUDA graphs as a forward engine: the eager model's inference pass captured once and replayed.

A forward pass launches one kernel per layer operation (about 160 for a ResNet-50). On a fast
GPU and a small chunk the launches, not the kernels, set the pace. :class:`GraphedForward`
captures the model's no-grad forward pass at one input shape as a CUDA graph
(``torch.cuda.CUDAGraph``) and replays it for every chunk: one launch per chunk, and the very
kernels eager PyTorch chose for that shape, so the numbers are eager PyTorch's. Set-up: a few
warm-up passes and the capture (well under a second), against tens of seconds for
``torch.compile``.

The capture is checked against the eager model on the first chunk before it is used; a model
that cannot be captured (a host sync or data-dependent control flow in ``forward``) or whose
replay disagrees raises :class:`GraphError`, and the engine then runs eagerly after a warning.
CUDA only: CPU and MPS have no CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError

#: Largest |softmax difference| between the replayed graph and the eager model on the check
#: chunk. The replay runs eager PyTorch's kernels, so it is 0 unless the model is not a pure
#: function of its input (e.g. it reads a host value captured at one moment).
TOLERANCE = 1e-5
#: Eager passes before the capture (cuDNN's algorithm choice, lazy initialisation).
WARMUP = 3


class GraphError(AbsgradError):
    """The model could not be captured as a CUDA graph, or its replay differs from eager."""


class GraphedForward:
    """``model``'s no-grad forward pass on inputs shaped like ``example (N, C, H, W)``,
    replayed from a CUDA graph: ``forward(x)`` copies ``x`` into the graph's input and returns a
    copy of its logits (float32). ``autocast()`` gives the precision context of every pass.
    ``difference``: the largest |softmax difference| against eager PyTorch on ``example``."""

    def __init__(
        self,
        model: nn.Module,
        example: Tensor,
        autocast: Callable[[], AbstractContextManager],
    ) -> None:
        if example.device.type != "cuda":
            raise GraphError(f"CUDA graphs need a CUDA device; the inputs are on {example.device}")
        try:
            with torch.inference_mode():
                self.static = example.clone()
                stream = torch.cuda.Stream(device=example.device)
                stream.wait_stream(torch.cuda.current_stream(example.device))
                with torch.cuda.stream(stream):
                    for _ in range(WARMUP):
                        with autocast():
                            want = model(self.static).float()
                torch.cuda.current_stream(example.device).wait_stream(stream)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph), autocast():
                    self.out = model(self.static).float()
                got = self(example)
        except GraphError:
            raise
        except Exception as err:  # noqa: BLE001 - any capture failure: the engine runs eagerly
            raise GraphError(f"{type(err).__name__}: {err}") from err
        self.difference = float((got.softmax(-1) - want.softmax(-1)).abs().max())
        if not self.difference <= TOLERANCE:
            raise GraphError(
                f"the replayed graph's probabilities differ from the eager model's by "
                f"{self.difference:.2e} (more than {TOLERANCE:g})"
            )

    def __call__(self, x: Tensor) -> Tensor:
        """Logits ``(N, K)`` of ``x`` (the example's shape), from one replay of the graph."""
        self.static.copy_(x)
        self.graph.replay()
        return self.out.clone()
