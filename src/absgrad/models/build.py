"""Building a model spec's architecture and loading it with its weights: ``load_model``.

Nothing downloads: the architecture is built with random weights, then ``weights`` (a local
file, read by :func:`absgrad.models.checkpoint.read_state_dict`) is loaded into it. When the
checkpoint's classifier has another number of classes than the architecture's default, the
architecture is rebuilt with the checkpoint's count (timm/torchvision ``num_classes``). The
loaded model returns ``(B, K)`` logits (:mod:`absgrad.models.logits`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError
from absgrad.models.checkpoint import CheckpointError, load_exact, read_state_dict, strip_prefixes
from absgrad.models.defaults import DEFAULT_SIZE
from absgrad.models.logits import logits_model, output_classes
from absgrad.models.spec import ModelSpec, ModelSpecError, parse_model_spec


def _import_factory(spec: ModelSpec) -> Callable[..., Any]:
    module_name, _, attr = spec.name.rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name)
        mod_name = f"absgrad_user_model_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(mod_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ModelSpecError(f"model spec {spec}: cannot import {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_name]
                raise
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not module_name.startswith(e.name):
                raise
            cwd = os.getcwd()
            if cwd in sys.path or not importlib.util.find_spec(module_name.split(".")[0], [cwd]):
                raise ModelSpecError(
                    f"model spec {spec}: module {module_name!r} not found; install it, add its "
                    "folder to PYTHONPATH, or write the spec as path/to/file.py:factory"
                ) from None
            sys.path.insert(0, cwd)  # `absgrad` run from the folder holding the module
            module = importlib.import_module(module_name)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelSpecError(f"model spec {spec}: {module_name} has no callable {attr!r}")
    return factory


def _call_factory(spec: ModelSpec, factory: Callable[..., Any], kw: dict[str, Any]) -> Any:
    """``factory(**kw)``; a factory that needs other arguments, or raises, is a
    :class:`ModelSpecError` saying so (its traceback with ``ABSGRAD_DEBUG=1``)."""
    try:
        inspect.signature(factory).bind(**kw)
    except TypeError as e:
        raise ModelSpecError(
            f"model spec {spec}: the factory cannot be called with "
            f"{', '.join(f'{k}={v!r}' for k, v in kw.items()) or 'no arguments'} ({e}); give "
            "its arguments defaults, or name a function that takes none"
        ) from None
    except ValueError:  # no signature (a builtin): just call it
        pass
    try:
        return factory(**kw)
    except AbsgradError:
        raise
    except Exception as e:
        raise ModelSpecError(f"model spec {spec}: the factory raised {_raised(e)}") from e


def _raised(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text if len(text) <= 300 else text[:297] + '...'}"


def build_architecture(spec: str | ModelSpec, num_classes: int | None = None) -> nn.Module:
    """The spec's model with random weights (nothing downloads); ``num_classes`` None: default."""
    spec = parse_model_spec(spec)
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if spec.kind == "timm":
        import timm

        if not timm.is_model(spec.name):
            close = timm.list_models(f"*{spec.name.split('.')[0][:6]}*")[:8]
            raise ModelSpecError(
                f"model spec {spec}: timm has no model {spec.name!r}"
                + (f" (similar: {', '.join(close)})" if close else "")
            )
        model = timm.create_model(spec.name, pretrained=False, **kw)
    elif spec.kind == "torchvision":
        import torchvision.models as tvm

        if spec.name not in tvm.list_models():
            close = [n for n in tvm.list_models() if spec.name[:4] in n][:8]
            raise ModelSpecError(
                f"model spec {spec}: torchvision has no model {spec.name!r}"
                + (f" (similar: {', '.join(close)})" if close else "")
            )
        model = tvm.get_model(spec.name, weights=None, **kw)
    else:
        try:
            factory = _import_factory(spec)
        except AbsgradError:
            raise
        except Exception as e:  # the user's module failed to import
            module = spec.name.rpartition(":")[0]
            raise ModelSpecError(
                f"model spec {spec}: importing {module} raised {_raised(e)}"
            ) from e
        model = _call_factory(spec, factory, kw)
        if not isinstance(model, nn.Module):
            raise ModelSpecError(
                f"model spec {spec}: the factory returned {type(model).__name__}, not an nn.Module"
            )
    return model


def _classifier_count(model: nn.Module, state: Mapping[str, Tensor]) -> int | None:
    """The checkpoint's class count when only the classifier's output rows differ, else None."""
    own = model.state_dict()
    diff = [k for k in own if k in state and state[k].shape != own[k].shape]
    if not diff:
        return None
    counts = set()
    for k in diff:
        a, b = state[k].shape, own[k].shape
        if len(a) != len(b) or a[1:] != b[1:] or a[0] == b[0]:
            return None
        counts.add(int(a[0]))
    return counts.pop() if len(counts) == 1 else None


def load_model(
    spec: str | ModelSpec,
    weights: str | Path | None = None,
    *,
    num_classes: int | None = None,
    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build the spec's model, load ``weights`` and return it in eval mode with ``(B, K)`` output.

    ``num_classes``: the class count to build with when there are no weights (timm and
    torchvision; a factory is called without arguments). With weights, the checkpoint decides.
    Without weights a timm/torchvision model keeps random weights, with a warning; the
    architecture is then built under seed 0, so every process (Ray workers, a resumed run) gets
    the same model.
    """
    spec = parse_model_spec(spec)
    if weights is None:
        if spec.kind != "callable":
            warnings.warn(
                f"NO WEIGHTS for {spec}: the model has RANDOM weights, so its maps and scores "
                "mean nothing. Pass --weights FILE (YAML: weights: FILE) with your trained "
                "weights; nothing is downloaded.",
                UserWarning,
                stacklevel=2,
            )
        with torch.random.fork_rng(devices=[]):  # the same random model in every process
            torch.manual_seed(0)
            model = build_architecture(spec, num_classes if spec.kind != "callable" else None)
    else:
        path = Path(weights).expanduser()
        state = read_state_dict(path, str(spec))
        model = build_architecture(spec)
        state = strip_prefixes(state, set(model.state_dict()))
        k = _classifier_count(model, state)
        if k is not None and spec.kind != "callable":
            model = build_architecture(spec, k)
        try:
            load_exact(model, state, path, str(spec))
        except CheckpointError as e:
            own = set(model.state_dict())
            raise CheckpointError(
                f"{e}. The checkpoint shares {len(own & state.keys())} of the model's "
                f"{len(own)} keys: is it a checkpoint of {spec}?"
            ) from None
    model = model.eval()
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, *size))
    if not (isinstance(out, Tensor) and out.dim() == 2):
        model = logits_model(model)
    output_classes(model, size)
    return model.to(device).eval()


__all__ = ["build_architecture", "load_model"]
