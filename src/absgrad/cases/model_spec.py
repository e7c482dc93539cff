"""Model specs: one string names a classifier everywhere (CLI, YAML, Python, Ray workers).

=============================  ===================================================================
spec                           model
=============================  ===================================================================
``torchvision:NAME``           ``torchvision.models.get_model(NAME, weights=None)``
``timm:NAME``                  ``timm.create_model(NAME, pretrained=False)``
``package.module:callable``    ``callable()``, any importable factory returning an ``nn.Module``
``path/to/file.py:callable``   the same, from a Python file
=============================  ===================================================================

Nothing downloads: the architecture is built with random weights, then ``weights`` (a local
file) is loaded into it: a state dict, a checkpoint holding one under a usual key
(``state_dict``, ``model_state_dict``, ``model``, ``net``), or a TorchScript file. Key prefixes
left by wrappers (``module.``, ``model.``, ``_orig_mod.``) are stripped; any missing, unexpected
or mis-shaped key is a :class:`~absgrad.cases.models.CheckpointError` listing them. When the
checkpoint's classifier has another number of classes than the architecture's default, the
architecture is rebuilt with the checkpoint's count (timm/torchvision ``num_classes``).

The loaded model returns ``(B, K)`` logits: a model whose output is a dict or an object with
``logits`` (Hugging Face), a tuple (first entry), class scores per token ``(B, N, K)`` (the class
token when the model has one, else the mean over tokens) or ``(B, K, 1, 1)`` is given a forward
that returns the logits; its module names (Grad-CAM layers) stay as they are.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from absgrad.cases.base import IMAGENET_MEAN, IMAGENET_STD
from absgrad.cases.models import CheckpointError, load_exact, read_checkpoint
from absgrad.errors import AbsgradError, MissingFileError

KINDS = ("torchvision", "timm")
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "state_dict_ema")
PREFIXES = ("module.", "model.", "_orig_mod.")
DEFAULT_SIZE = 224
DEFAULT_CROP_PCT = 0.875  # 224 / 256


class ModelSpecError(AbsgradError):
    """A model spec string cannot be parsed or resolved; the message says which part."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: ``kind`` is ``torchvision``, ``timm`` or ``callable``; ``name`` the model
    name or ``module:attribute`` (a ``.py`` path made absolute)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return self.name if self.kind == "callable" else f"{self.kind}:{self.name}"

    @property
    def is_file(self) -> bool:
        return self.kind == "callable" and self.name.rsplit(":", 1)[0].endswith(".py")


def parse_model_spec(text: str | ModelSpec) -> ModelSpec:
    """Parse ``torchvision:NAME``, ``timm:NAME``, ``module.path:callable`` or ``file.py:callable``.

    A ``.py`` path is resolved to an absolute path (so another process finds the same file).
    """
    if isinstance(text, ModelSpec):
        return text
    if not isinstance(text, str) or ":" not in text:
        raise ModelSpecError(
            f"model spec {text!r} is not one of torchvision:NAME, timm:NAME, "
            "package.module:factory or path/to/file.py:factory"
        )
    head, _, tail = text.strip().rpartition(":")
    if not head or not tail:
        raise ModelSpecError(f"model spec {text!r}: empty part before or after ':'")
    if head in KINDS:
        return ModelSpec(head, tail)
    if head.endswith(".py"):
        path = Path(head).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"model spec {text!r}: Python file {path} not found")
        return ModelSpec("callable", f"{path.resolve()}:{tail}")
    if not all(part.isidentifier() for part in head.split(".")) or not tail.isidentifier():
        raise ModelSpecError(
            f"model spec {text!r}: expected torchvision:NAME, timm:NAME or "
            "package.module:factory (a dotted module path, a colon, a function name)"
        )
    return ModelSpec("callable", f"{head}:{tail}")


def spec_fingerprint(spec: ModelSpec) -> str | None:
    """A hash of the ``.py`` file a spec builds from (its code is part of the model), else None."""
    if not spec.is_file:
        return None
    return file_fingerprint(Path(spec.name.rsplit(":", 1)[0]))


@lru_cache(maxsize=32)
def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def file_fingerprint(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file's bytes (cached per size and mtime)."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    return _fingerprint(str(p), st.st_size, st.st_mtime_ns)


# -- architectures --------------------------------------------------------------------------------
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
        factory = _import_factory(spec)
        model = factory(**kw) if kw else factory()
        if not isinstance(model, nn.Module):
            raise ModelSpecError(
                f"model spec {spec}: the factory returned {type(model).__name__}, not an nn.Module"
            )
    return model


# -- preprocessing defaults --------------------------------------------------------------------
@dataclass(frozen=True)
class ModelDefaults:
    """What the model's makers used at test time: input size, resize, normalisation."""

    size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE)
    resize: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    source: str = "ImageNet defaults (224 px, resize 256, ImageNet mean/std)"


def model_defaults(spec: str | ModelSpec) -> ModelDefaults:
    """Test-time preprocessing the library knows for the spec (no download, no model built).

    timm: the model's pretrained config (``input_size``, ``crop_pct``, ``mean``, ``std``,
    ``interpolation``); torchvision: its default weights' transforms; a factory: ImageNet
    defaults (224 px after resizing the shorter side to 256, ImageNet mean/std).
    """
    spec = parse_model_spec(spec)
    if spec.kind == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(spec.name)
        if cfg is not None:
            _, h, w = cfg.input_size
            crop_pct = cfg.crop_pct or DEFAULT_CROP_PCT
            return ModelDefaults(
                size=(h, w),
                resize=math.floor(min(h, w) / crop_pct),
                mean=tuple(cfg.mean),
                std=tuple(cfg.std),
                interpolation=cfg.interpolation or "bicubic",
                source=f"timm's pretrained config of {spec.name}",
            )
    elif spec.kind == "torchvision":
        from torchvision.models import get_model_weights

        try:
            t = get_model_weights(spec.name).DEFAULT.transforms()
        except (ValueError, KeyError, AttributeError):
            t = None
        if t is not None and hasattr(t, "crop_size"):
            crop, resize = t.crop_size[0], t.resize_size[0]
            return ModelDefaults(
                size=(crop, crop),
                resize=resize,
                mean=tuple(t.mean),
                std=tuple(t.std),
                interpolation=str(t.interpolation.value),
                source=f"torchvision's default weights of {spec.name}",
            )
    return ModelDefaults()


# -- weights files --------------------------------------------------------------------------------
def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file: a state dict, a checkpoint dict holding one, TorchScript."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(
            f"weights file not found: {path} (a state dict saved with torch.save, a checkpoint "
            "holding one, or a TorchScript file: your own file; nothing is downloaded)"
        )
    if _is_torchscript(path):
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except RuntimeError as e:
            raise CheckpointError(f"cannot read TorchScript file {path}: {e}") from e
    obj = read_checkpoint(path, "model")
    if isinstance(obj, Mapping):
        for key in STATE_KEYS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"weights file {path} holds no state dict: expected a dict of tensors or a checkpoint "
            f"with one under {', '.join(STATE_KEYS[:4])}, got {type(obj).__name__}"
            + (f" with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, Mapping) else "")
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"weights file {path}: entries {bad[:8]} are not tensors; expected a state dict "
            f"(or a checkpoint with one under {', '.join(STATE_KEYS[:4])})"
        )
    return {str(k): v for k, v in obj.items()}


def strip_prefixes(state: Mapping[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Strip ``module.``/``model.``/``_orig_mod.`` prefixes (up to 3 deep, in any order) where
    that matches more of the model's keys; the best match wins, the original on ties."""
    best, score = dict(state), len(model_keys & state.keys())
    frontier = [best]
    for _ in range(3):
        nxt = []
        for cur in frontier:
            for p in PREFIXES:
                if not any(k.startswith(p) for k in cur):
                    continue
                cand = {(k[len(p) :] if k.startswith(p) else k): v for k, v in cur.items()}
                nxt.append(cand)
                s = len(model_keys & cand.keys())
                if s > score:
                    best, score = cand, s
        frontier = nxt
    return best


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


# -- logits -----------------------------------------------------------------------------------
def to_logits(out: Any, model: nn.Module) -> Tensor:
    """A model output -> ``(B, K)`` logits (see the module docstring for the rules)."""
    if isinstance(out, Tensor):
        if out.dim() == 3:  # (B, N, K) class scores per token
            has_cls = getattr(model, "cls_token", None) is not None or isinstance(
                getattr(model, "class_token", None), Tensor
            )
            return out[:, 0] if has_cls else out.mean(dim=1)
        if out.dim() == 4 and out.shape[2:] == (1, 1):
            return out[:, :, 0, 0]
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return to_logits(logits, model)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return to_logits(out[0], model)
    keys = f" with keys {sorted(map(str, out))}" if isinstance(out, Mapping) else ""
    raise AbsgradError(
        f"the model returned {type(out).__name__}{keys}; absgrad needs (B, K) class logits: "
        "a tensor, a dict or object with 'logits', or a tuple whose first entry is the logits"
    )


def logits_model(model: nn.Module) -> nn.Module:
    """``model`` with a forward returning ``(B, K)`` logits; its module names are unchanged.

    The model's class is swapped for a subclass whose ``forward`` post-processes the original
    output with :func:`to_logits`; ``isinstance`` checks and Grad-CAM layer names still hold.
    """
    base = type(model)
    if getattr(base, "_absgrad_logits", False):
        return model

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Tensor:
        return to_logits(base.forward(self, *args, **kwargs), self)

    model.__class__ = type(
        base.__name__,
        (base,),
        {"forward": forward, "_absgrad_logits": True, "__module__": base.__module__},
    )
    return model


def output_classes(model: nn.Module, size: tuple[int, int]) -> int:
    """Run one zero image ``(1, 3, H, W)`` and return K of the ``(1, K)`` output (checked)."""
    p = next(model.parameters(), None)
    x = torch.zeros(1, 3, *size, device=p.device if p is not None else "cpu")
    with torch.inference_mode():
        out = model.eval()(x)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise AbsgradError(
            f"the model's output for a (1, 3, {size[0]}, {size[1]}) input is {shape}; "
            "absgrad needs (B, K) class logits"
        )
    return int(out.shape[1])


# -- the whole thing ------------------------------------------------------------------------------
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
        state = read_state_dict(path)
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


__all__ = [
    "CheckpointError",
    "ModelDefaults",
    "ModelSpec",
    "ModelSpecError",
    "build_architecture",
    "file_fingerprint",
    "load_model",
    "logits_model",
    "model_defaults",
    "output_classes",
    "parse_model_spec",
    "read_state_dict",
    "strip_prefixes",
    "to_logits",
]
