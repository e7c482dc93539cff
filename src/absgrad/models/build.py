"""Building a model spec's architecture and loading it with its weights: ``load_model``.

``weights`` (:mod:`absgrad.models.pretrained`) is ``"pretrained"`` (the default: the library's
published weights, loaded by the library's own code from its cache, downloaded there once),
``"random"`` (the architecture under seed 0) or a local file, read by
:func:`absgrad.models.checkpoint.read_state_dict` into the architecture. When a checkpoint's
classifier has another number of classes than the architecture's default, the architecture is
rebuilt with the checkpoint's count (timm/torchvision ``num_classes``, Hugging Face
``num_labels``). The loaded model returns ``(B, K)`` logits (:mod:`absgrad.models.logits`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError, first_line
from absgrad.models.checkpoint import CheckpointError, load_exact, read_state_dict, strip_prefixes
from absgrad.models.defaults import DEFAULT_SIZE
from absgrad.models.logits import logits_classes, logits_model, to_logits
from absgrad.models.pretrained import (
    PRETRAINED,
    RANDOM,
    fetch,
    torchvision_weights,
    weights_choice,
)
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


def _invoke_factory(spec: ModelSpec, factory: Callable[..., Any], kw: dict[str, Any]) -> Any:
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


def no_such_model(spec: ModelSpec) -> ModelSpecError:
    """The error for a timm or torchvision name the library does not have, with close names."""
    if spec.kind == "timm":
        import timm

        known = timm.list_models(f"*{spec.name.split('.')[0][:6]}*")
    else:
        import torchvision.models as tvm

        known = [n for n in tvm.list_models() if spec.name[:4] in n]
    return ModelSpecError(
        f"model spec {spec}: {spec.kind} has no model {spec.name!r}"
        + (f" (similar: {', '.join(known[:8])})" if known else "")
    )


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelSpecError(
            "hf: model specs need Hugging Face transformers: pip install 'absgrad[hf]'"
        ) from None
    return transformers


@contextlib.contextmanager
def _transformers_quiet() -> Iterator[None]:
    """transformers' notes on initialised heads, loading reports and progress bars off while
    it builds."""
    logging = _transformers().utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _hf_model(spec: ModelSpec, *, pretrained: bool, num_classes: int | None = None) -> nn.Module:
    """An ``hf:`` spec's image classifier: its published weights, or random under the caller's
    seed (``num_classes``: another head size)."""
    transformers = _transformers()
    folder = fetch(spec, weights=pretrained).folder
    auto = transformers.AutoModelForImageClassification
    try:
        with _transformers_quiet():
            if pretrained:
                model = auto.from_pretrained(folder, local_files_only=True)
            else:
                config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
                if num_classes is not None:
                    config.num_labels = num_classes
                model = auto.from_config(config)
    except (ValueError, KeyError) as e:
        raise ModelSpecError(
            f"model spec {spec}: transformers cannot build an image classifier from it "
            f"({type(e).__name__}: {first_line(e)})"
        ) from None
    return model.float()  # weights stored in half precision are computed in fp32, as the rest


def build_architecture(spec: str | ModelSpec, num_classes: int | None = None) -> nn.Module:
    """The spec's model with random weights (nothing downloads but an ``hf:`` model's
    configuration); ``num_classes`` None: default."""
    spec = parse_model_spec(spec)
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if spec.kind == "timm":
        import timm

        if not timm.is_model(spec.name):
            raise no_such_model(spec)
        model = timm.create_model(spec.name, pretrained=False, **kw)
    elif spec.kind == "torchvision":
        import torchvision.models as tvm

        if spec.name not in tvm.list_models():
            raise no_such_model(spec)
        model = tvm.get_model(spec.name, weights=None, **kw)
    elif spec.kind == "hf":
        model = _hf_model(spec, pretrained=False, num_classes=num_classes)
    else:
        model = _call_factory(spec, kw)
    return model


def _call_factory(spec: ModelSpec, kw: dict[str, Any]) -> nn.Module:
    """The model a ``module:factory`` or ``file.py:factory`` spec builds; a module that fails to
    import, a factory that cannot be called or raises, or one that returns no module is a
    :class:`ModelSpecError` naming the spec."""
    try:
        factory = _import_factory(spec)
    except AbsgradError:
        raise
    except Exception as e:  # the user's module failed to import
        module = spec.name.rpartition(":")[0]
        raise ModelSpecError(f"model spec {spec}: importing {module} raised {_raised(e)}") from e
    model = _invoke_factory(spec, factory, kw)
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model spec {spec}: the factory returned {type(model).__name__}, not an nn.Module"
        )
    return model


def pretrained_model(spec: str | ModelSpec) -> nn.Module:
    """The spec's model with the library's published weights, loaded by the library's own
    code from the files :func:`absgrad.models.pretrained.fetch` put in its cache."""
    spec = parse_model_spec(spec)
    if spec.kind == "timm":
        import timm

        path = fetch(spec).weights_file
        return timm.create_model(
            spec.name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}
        )
    if spec.kind == "torchvision":
        import torchvision.models as tvm

        fetch(spec)  # in torch.hub's cache: the enum's loader finds it there
        return tvm.get_model(spec.name, weights=torchvision_weights(spec))
    if spec.kind == "hf":
        return _hf_model(spec, pretrained=True)
    return _call_factory(spec, {})


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


def _seeded(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` under seed 0, the caller's random state untouched: the same model in every
    process (Ray workers, a resumed run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def load_model(
    spec: str | ModelSpec,
    weights: str | Path | None = PRETRAINED,
    *,
    num_classes: int | None = None,
    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build the spec's model with ``weights`` and return it in eval mode with ``(B, K)`` output.

    ``weights``: ``"pretrained"`` (or None; a factory's model as it returns it), ``"random"``
    (with a warning; under seed 0) or a weights file. ``num_classes``: the class count to build
    with random weights (timm, torchvision, hf; a factory is called without arguments). With
    a file, the checkpoint decides; with published weights, the library.
    """
    return load_classifier(spec, weights, num_classes=num_classes, size=size, device=device)[0]


def load_classifier(
    spec: str | ModelSpec,
    weights: str | Path | None = PRETRAINED,
    *,
    num_classes: int | None = None,
    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, int]:
    """:func:`load_model` and the model's number of classes K, both from one probe pass."""
    spec = parse_model_spec(spec)
    choice = weights_choice(weights)
    if choice == RANDOM:
        if spec.kind == "callable":
            raise ModelSpecError(
                f"model spec {spec}: a factory builds its model itself, random weights or not; "
                "--weights random applies to timm:, torchvision: and hf: specs"
            )
        warnings.warn(
            f"RANDOM weights for {spec} (--weights random): its maps and scores mean nothing "
            "beyond timing and trying the pipeline",
            UserWarning,
            stacklevel=2,
        )
        model = _seeded(lambda: build_architecture(spec, num_classes))
    elif choice == PRETRAINED:
        model = _seeded(lambda: pretrained_model(spec))  # a factory may draw random numbers
    else:
        assert isinstance(choice, Path)
        model = _from_file(spec, choice)
    model = model.eval()
    try:
        with torch.inference_mode():
            out = model(torch.zeros(1, 3, *size))
    except (RuntimeError, ValueError, AssertionError) as e:
        raise AbsgradError(
            f"{spec} fails on a (1, 3, {size[0]}, {size[1]}) input: {type(e).__name__}: "
            f"{first_line(e)} (the input size is --size)"
        ) from None
    if not (isinstance(out, Tensor) and out.dim() == 2):
        model = logits_model(model)  # its forward is to_logits of the original's
        out = to_logits(out, model)
    return model.to(device).eval(), logits_classes(out, size)


def _from_file(spec: ModelSpec, path: Path) -> nn.Module:
    """The architecture with the weights file ``path`` loaded exactly."""
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
    return model


__all__ = [
    "build_architecture",
    "load_classifier",
    "load_model",
    "no_such_model",
    "pretrained_model",
]
