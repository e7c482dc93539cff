"""Forward engines: a model wrapped into a fast no-grad forward callable for the metrics.

The perturbation metrics (RCAP, deletion/insertion) spend almost all their time in inference
forward passes of a fixed model on fixed-size chunks of images. :class:`Engine` wraps a model
into a callable ``(N, C, H, W) -> (N, K)`` logits that runs under ``torch.inference_mode`` in
eval mode, eagerly, through ``torch.compile`` or through ONNX Runtime:

* ``onnx`` (CPU): the model exported to ONNX at the chunk's shape and run by ONNX Runtime
  (:mod:`absgrad.inference.ort`), checked against eager PyTorch before use. The fastest engine on a CPU,
  and its set-up (export and check) takes about a second.
* ``cudagraph`` (CUDA): the eager model's forward pass at the chunk's shape captured once as a
  CUDA graph and replayed for every chunk (:mod:`absgrad.inference.cudagraph`): one launch
  per chunk, eager PyTorch's kernels and numbers, checked against eager before use; set-up
  well under a second.
* ``compile``: ``torch.compile``. The compiled kernels are cached on disk
  (:func:`compile_cache_dir`), so later runs and other worker processes on the same machine
  skip most of the compile. ``$ABSGRAD_COMPILE_MODE`` sets its mode (e.g.
  ``reduce-overhead``: inductor's kernels replayed from CUDA graphs).
* ``eager``: the model as it is (chunks of ``chunk``, no padding).
* ``auto`` (:func:`resolve_engine`): ``onnx`` on a CPU where ONNX Runtime is installed; on a
  CUDA device the faster of ``eager`` and ``cudagraph``, timed on the run's model and chunk
  (:func:`engine_costs`, :func:`fastest_engine`); elsewhere ``compile`` when a run has enough
  images to repay the one-off compile (:data:`AUTO_MIN_IMAGES`), else ``eager``.

With ``onnx``, ``cudagraph`` and ``compile`` every call is cut into chunks of ``chunk`` images
and the last chunk is padded (with copies of its last image) to ``chunk``, so the model sees
one input shape and nothing is exported, captured or compiled twice. If exporting, capturing,
compiling or running the fast model fails, or the exported or captured model disagrees with
the eager one, the engine warns once and runs eagerly.

``precision="bf16"`` runs the forward pass under bfloat16 autocast: faster on some hardware,
but probabilities move by about 1e-3, so it is an explicit option only (fp32 by default).

Pass an engine anywhere a metric takes a model (``absgrad.metrics.rcap(engine, ...)``); the
gradient methods need the ``nn.Module`` itself.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError, first_line
from absgrad.inference.chunk_sizes import per_image_cost
from absgrad.names import ENGINES, PRECISIONS
from absgrad.utils.devices import model_device
from absgrad.utils.model_state import eval_mode

log = logging.getLogger("absgrad.inference.engine")

#: ``auto`` compiles when a run computes at least this many images. On the 2-core development
#: CPU (EfficientNet-Lite0, 224 px) a cold compile costs about 50 s on a quiet machine and a
#: warm one (kernels cached on disk) much less, and compiling saves about 5 s per protocol
#: image (docs/performance.md), so 16 images repay even a cold compile.
AUTO_MIN_IMAGES = 16
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
#: The ``torch.compile`` backend when none is given (``$ABSGRAD_COMPILE_BACKEND`` overrides it,
#: e.g. ``aot_eager`` to trace without generating code).
DEFAULT_BACKEND = os.environ.get("ABSGRAD_COMPILE_BACKEND", "inductor")
#: The ``torch.compile`` mode when none is given (``$ABSGRAD_COMPILE_MODE``; unset: the default).
DEFAULT_MODE = os.environ.get("ABSGRAD_COMPILE_MODE") or None
#: What a fast engine's set-up is called in warnings and logs.
_SETUP = {"onnx": "ONNX Runtime", "cudagraph": "CUDA graph capture", "compile": "torch.compile"}


class EngineError(AbsgradError):
    """An invalid engine or precision setting."""


def check_engine(kind: object) -> str:
    """Validate an engine name (one of :data:`absgrad.names.ENGINES`)."""
    if kind not in ENGINES:
        raise EngineError(f"engine must be one of {', '.join(ENGINES)}, got {kind!r}")
    return str(kind)


def check_precision(precision: object) -> str:
    """Validate a precision name (``fp32`` or ``bf16``)."""
    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return str(precision)


#: The engines ``auto`` times against each other on a CUDA device (:func:`engine_costs`).
#: ``compile`` is not among them: its set-up takes tens of seconds, more than a short run
#: saves; ask for it by name.
CUDA_CANDIDATES = ("eager", "cudagraph")


def resolve_engine(
    kind: str,
    n_images: int,
    *,
    device: str = "cpu",
    precision: str = "fp32",
    measure: Callable[[tuple[str, ...]], dict[str, float]] | None = None,
) -> str:
    """The engine for a run of ``n_images`` images on ``device``. ``auto``: ``onnx`` on a CPU
    in fp32 where ONNX Runtime is installed; on a CUDA device the fastest of
    :data:`CUDA_CANDIDATES` by ``measure(kinds) -> {kind: seconds per image}`` (e.g.
    :func:`engine_costs`; without ``measure``: ``eager``); elsewhere ``compile`` when
    ``n_images >= AUTO_MIN_IMAGES``, else ``eager``."""
    from absgrad.inference import ort

    kind = check_engine(kind)
    if kind != "auto":
        return kind
    dev = torch.device(device).type
    if dev == "cpu" and precision == "fp32" and ort.available():
        return "onnx"
    if dev == "cuda":
        return fastest_engine(measure(CUDA_CANDIDATES)) if measure is not None else "eager"
    return "compile" if n_images >= AUTO_MIN_IMAGES else "eager"


def fastest_engine(costs: dict[str, float], tolerance: float = 0.03) -> str:
    """The engine of ``costs`` ``{kind: seconds per image}`` to use: the cheapest, unless
    ``eager`` is within ``1 + tolerance`` of it (then ``eager``: nothing to set up, nothing to
    fall back from). Kinds that could not be measured are left out of ``costs``."""
    if not costs:
        return "eager"
    best = min(costs, key=costs.__getitem__)
    if "eager" in costs and costs["eager"] <= costs[best] * (1 + tolerance):
        return "eager"
    return best


def engine_costs(
    model: nn.Module,
    sample_shape: tuple[int, ...],
    device: torch.device | str,
    chunk: int,
    kinds: tuple[str, ...],
    *,
    precision: str = "fp32",
    repeats: int = 3,
    built: dict[str, Engine] | None = None,
) -> dict[str, float]:
    """Best seconds per image of a forward chunk of ``chunk`` random images of
    ``sample_shape (C, H, W)`` with each engine of ``kinds`` (its set-up done first, not
    timed). An engine that fails to set up (it falls back to eager) is left out, with its
    warning. ``built``, when given, receives each timed engine by kind, ready to use."""
    out: dict[str, float] = {}
    for kind in kinds:
        engine = Engine(model, kind, chunk=chunk, precision=precision)
        engine(torch.randn(chunk, *sample_shape, device=device))  # set-up: capture, export, compile
        if engine.kind != kind:
            continue  # it fell back to eager
        out[kind] = per_image_cost(engine, sample_shape, device, repeats)(chunk)
        if built is not None:
            built[kind] = engine
    return out


def _torch_default_cache_dir() -> str | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # pragma: no cover - another torch layout
        return None
    return os.path.abspath(default_cache_dir())


def _user_cache_env() -> str | None:
    """``$TORCHINDUCTOR_CACHE_DIR`` as the user set it. Torch writes its default folder into
    the variable the first time it asks for it (importing timm does), so that value counts as
    unset."""
    env = os.environ.get(CACHE_ENV)
    if env and os.path.abspath(os.path.expanduser(env)) == _torch_default_cache_dir():
        return None
    return env


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept: ``$TORCHINDUCTOR_CACHE_DIR`` if the user set it, else
    ``inductor/`` in absgrad's cache folder (``$ABSGRAD_CACHE`` or ``~/.cache/absgrad``)."""
    env = _user_cache_env()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("ABSGRAD_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "absgrad"
    return root / "inductor"


def use_compile_cache() -> Path:
    """Point torch's inductor cache at :func:`compile_cache_dir` (unless the user set
    ``TORCHINDUCTOR_CACHE_DIR``); returns the folder. Worker processes inherit it."""
    path = compile_cache_dir()
    os.environ[CACHE_ENV] = str(path)
    return path


class Engine:
    """A model as a no-grad forward callable ``(N, C, H, W) -> (N, K)`` logits.

    Args:
        model: the classifier (``nn.Module``); run in eval mode, its flags restored after
            each call. A model in eval mode already (the runner's, put there once per run)
            is not touched: each call only reads its modules' flags, from a list taken when
            the engine is built (about 15 µs for a ResNet-50, against about 1 ms to switch
            it to eval mode and back).
        kind: ``eager``, ``compile``, ``onnx`` or ``cudagraph`` (``auto`` needs a run size:
            :func:`resolve_engine`).
        chunk: images per forward pass; with ``compile``, ``onnx`` and ``cudagraph`` every
            pass has exactly this many (the last one padded), so nothing recompiles.
        precision: ``fp32`` or ``bf16`` (autocast; logits returned as fp32).
        backend, mode: passed to ``torch.compile`` (defaults :data:`DEFAULT_BACKEND`,
            :data:`DEFAULT_MODE`).

    ``stats``: images run, chunks, padded images and the set-up seconds (``compile_s``: the
    first compiled call, the ONNX export or the graph capture, with its check). ``kind``
    becomes ``eager`` after a fallback.
    """

    def __init__(
        self,
        model: nn.Module,
        kind: str = "eager",
        *,
        chunk: int = 16,
        precision: str = "fp32",
        backend: Any = None,
        mode: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise EngineError(f"an engine wraps a torch.nn.Module, got {type(model).__name__}")
        kind = check_engine(kind)
        if kind == "auto":
            raise EngineError("engine 'auto' needs the run size: use resolve_engine(kind, n)")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise EngineError(f"chunk must be a positive int, got {chunk!r}")
        self.model = model
        self._modules = tuple(model.modules())
        self.kind = kind
        self.chunk = chunk
        self.precision = check_precision(precision)
        self.backend = DEFAULT_BACKEND if backend is None else backend
        self.mode = DEFAULT_MODE if mode is None else mode
        self.stats: dict[str, Any] = {"images": 0, "chunks": 0, "padded": 0, "compile_s": 0.0}
        self._compiled: Callable[[Tensor], Tensor] | None = None
        self._first = True
        if kind == "onnx":
            from absgrad.inference import ort

            ort.require()
            if self.precision != "fp32":
                raise EngineError("engine 'onnx' runs fp32 only; use engine compile for bf16")
            device = model_device(model)
            if device.type != "cpu":
                raise EngineError(
                    f"engine 'onnx' runs on the CPU; the model is on {device}: use engine "
                    "cudagraph or compile"
                )
        if kind == "cudagraph":
            device = model_device(model)
            if device.type != "cuda":
                raise EngineError(
                    f"engine 'cudagraph' needs the model on a CUDA device; it is on {device}: "
                    "use engine onnx, compile or eager"
                )
        if kind == "compile":
            from absgrad.utils.determinism import sync_inductor

            use_compile_cache()
            sync_inductor()  # the run's deterministic mode, which the eager path sets alone
            self._compiled = torch.compile(
                model, backend=self.backend, mode=self.mode, dynamic=False
            )

    def __repr__(self) -> str:
        return f"Engine({type(self.model).__name__}, kind={self.kind!r}, chunk={self.chunk}, precision={self.precision!r})"

    @property
    def compiled(self) -> bool:
        """True while the compiled, exported or captured model is in use (False for eager or
        after a fallback; ``onnx`` exports and ``cudagraph`` captures at the first call)."""
        return self._compiled is not None

    def __call__(self, x: Tensor) -> Tensor:
        """Logits ``(N, K)`` of ``x (N, C, H, W)``, in chunks of ``chunk``."""
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise EngineError("an engine takes a batch tensor (N, C, H, W)")
        with eval_mode(self.model, modules=self._modules):  # the module list walked once
            if self.kind in ("onnx", "cudagraph") and self._compiled is None and x.shape[0]:
                self._set_up(x[: self.chunk])
            with torch.inference_mode():
                outs = [self._run(x[s : s + self.chunk]) for s in range(0, x.shape[0], self.chunk)]
        if not outs:
            return self._run_eager(x)
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _autocast(self, x: Tensor):
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _set_up(self, first: Tensor) -> None:
        """Export the model to ONNX (``onnx``) or capture it as a CUDA graph (``cudagraph``)
        at the chunk's shape (``first`` padded), checked against eager PyTorch."""
        from absgrad.inference.cudagraph import GraphedForward, GraphError
        from absgrad.inference.ort import OrtError, OrtForward

        t0 = time.perf_counter()
        try:
            if self.kind == "onnx":
                # outside any caller's inference mode: tracing must not leave inference
                # tensors behind (e.g. in a forward hook's state)
                with torch.inference_mode(False):
                    self._compiled = OrtForward(self.model, self._pad(first).clone())
            else:
                example = self._pad(first).clone()
                self._compiled = GraphedForward(self.model, example, lambda: self._autocast(first))
        except (OrtError, GraphError) as err:
            self._fallback(err)
            return
        self._first = False
        self.stats["compile_s"] = time.perf_counter() - t0
        self.stats["ort_difference" if self.kind == "onnx" else "graph_difference"] = (
            self._compiled.difference
        )
        log.info(
            "engine: %s of %s in %.1f s (probabilities within %.1e of eager PyTorch)",
            "ONNX export" if self.kind == "onnx" else "CUDA graph capture",
            type(self.model).__name__,
            self.stats["compile_s"],
            self._compiled.difference,
        )

    def _pad(self, x: Tensor) -> Tensor:
        """``x`` padded to ``chunk`` images with copies of its last image."""
        n = x.shape[0]
        return x if n >= self.chunk else torch.cat([x, x[-1:].expand(self.chunk - n, *x.shape[1:])])

    def _run_eager(self, x: Tensor) -> Tensor:
        with self._autocast(x):
            return self.model(x).float()

    def _run(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        self.stats["images"] += n
        self.stats["chunks"] += 1
        if self._compiled is None:
            return self._run_eager(x)
        if n < self.chunk:  # one input shape for the compiled graph: pad with the last image
            x = self._pad(x)
            self.stats["padded"] += self.chunk - n
        elif (
            self.kind == "compile" and not x.is_inference()
        ):  # one kind of tensor too (a guard of the compiled graph)
            x = x.clone()
        t0 = time.perf_counter()
        try:
            with self._autocast(x):
                out = self._compiled(x).float()
        except Exception as err:  # noqa: BLE001 - any engine failure falls back to eager
            out = self._run_eager(x)  # a model error raises here, as it would eagerly
            self._fallback(err)
        if self._first:
            self._first = False
            self.stats["compile_s"] = time.perf_counter() - t0
            log.info(
                "engine: compiled %s in %.1f s", type(self.model).__name__, self.stats["compile_s"]
            )
        return out[:n]

    def _fallback(self, err: BaseException) -> None:
        what = _SETUP[self.kind]
        self._compiled = None
        self.kind = "eager"
        msg = f"{what} failed ({type(err).__name__}: {first_line(err, None)}); running the model eagerly"
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
        log.warning("engine: %s", msg)


def make_engine(
    model: nn.Module, kind: str = "eager", *, chunk: int = 16, precision: str = "fp32"
) -> Engine:
    """:class:`Engine` of ``model`` (``kind``: ``eager``, ``compile`` or ``onnx``)."""
    return Engine(model, kind, chunk=chunk, precision=precision)
