"""Checkpoints: the one reader of weights files, and loading a state dict into a model exactly.

Every model absgrad loads (the built-in cases' networks, model specs, the synthetic CNN) reads
its weights through :func:`read_state_dict`: a state dict, a checkpoint holding one under a
usual key (``state_dict``, ``model_state_dict``, ``model``, ``net``, ...), a ``.safetensors``
file, or a TorchScript file; nothing is downloaded. Key prefixes left by wrappers (``module.``, ``model.``, ``_orig_mod.``)
are stripped where that matches the model (:func:`strip_prefixes`); any missing, unexpected or
mis-shaped key is a :class:`CheckpointError` listing them (:func:`load_exact`).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError, MissingFileError, first_line

STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "state_dict_ema")
PREFIXES = ("module.", "model.", "_orig_mod.")


class CheckpointError(AbsgradError):
    """A checkpoint cannot be read, holds no state dict, or does not match the model; the
    message names the file and lists the keys."""


def _torch_load(path: Path, what: str) -> object:
    """``torch.load`` on the CPU with ``weights_only=True`` (Python 2 pickles: latin-1)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnicodeDecodeError:  # checkpoints pickled by Python 2
        return torch.load(path, map_location="cpu", weights_only=True, encoding="latin1")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(
            f"cannot read {what} checkpoint {path}: {type(e).__name__}: "
            f"{first_line(e, None, '(no message)')}. "
            "Expected a file written by torch.save holding a state dict (or a checkpoint dict "
            f"with one under {', '.join(STATE_KEYS[:4])}) of tensors, or a TorchScript file."
        ) from e


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())


def _read_safetensors(path: Path, what: str) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {what} safetensors file {path}: {e}") from e


def read_state_dict(path: str | Path, what: str = "model") -> dict[str, Tensor]:
    """The tensors of a weights file, the one place every model's weights are read.

    Accepted: a state dict saved with ``torch.save``; a checkpoint dict holding one under
    ``STATE_KEYS`` (``state_dict``, ``model_state_dict``, ``model``, ``net``, ``module``,
    ``state_dict_ema``, the first that is a dict of tensors); a ``.safetensors`` file (Hugging
    Face, timm); a TorchScript file; pickles written by Python 2. Keys are returned as stored (see :func:`strip_prefixes`). ``what`` names the
    model in messages. A missing file is a ``MissingFileError``; an empty, unreadable or
    tensor-less file a :class:`CheckpointError`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(
            f"weights file not found: {path} (a state dict saved with torch.save, a checkpoint "
            "holding one, or a TorchScript file: your own file; nothing is downloaded)"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} checkpoint {path} is an empty file (0 bytes)")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path, what)
    if _is_torchscript(path):
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except RuntimeError as e:
            raise CheckpointError(f"cannot read TorchScript file {path}: {e}") from e
    obj = _torch_load(path, what)
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
    where = f"(or a checkpoint with one under {', '.join(STATE_KEYS[:4])})"
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{what} checkpoint {path} holds no state dict: expected a dict of tensors {where}, "
            f"got {'an empty ' if isinstance(obj, Mapping) else ''}{type(obj).__name__}"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"{what} checkpoint {path} holds no state dict: entries {bad[:8]} are not tensors; "
            f"expected a state dict {where}"
        )
    return {str(k): v for k, v in obj.items()}


def strip_prefixes(
    state: Mapping[str, Tensor],
    model_keys: set[str],
    adapt: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """Strip ``module.``/``model.``/``_orig_mod.`` prefixes (up to 3 deep, in any order) where
    that matches more of the model's keys; the best match wins, the original on ties.

    ``adapt`` maps a layout onto the model's (e.g. old DenseNet key names); candidates are
    scored after it, and the winner is returned adapted.
    """
    fit = adapt if adapt is not None else dict

    def score(cand: Mapping[str, Tensor]) -> int:
        return len(model_keys & fit(cand).keys())

    best = dict(state)
    top = score(best)
    frontier = [best]
    for _ in range(3):
        nxt = []
        for cur in frontier:
            for p in PREFIXES:
                if not any(k.startswith(p) for k in cur):
                    continue
                cand = {(k[len(p) :] if k.startswith(p) else k): v for k, v in cur.items()}
                nxt.append(cand)
                s = score(cand)
                if s > top:
                    best, top = cand, s
        frontier = nxt
    return fit(best)


def short_list(keys: list[str], n: int = 8) -> str:
    """The first ``n`` keys, joined, with the total when there are more."""
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_exact(model: nn.Module, state: Mapping[str, Tensor], path: Path, what: str) -> nn.Module:
    """Load ``state`` into ``model``; any missing, unexpected or mis-shaped key is an error."""
    own = model.state_dict()
    state = dict(state)
    for k in own:  # old checkpoints lack BatchNorm's step counter; it does not affect outputs
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{what} checkpoint {path} holds NaN or infinite values in {short_list(bad)}: "
            "the weights are broken (a diverged or damaged training run?)"
        )
    if missing or unexpected or shapes:
        parts = [f"{what} checkpoint {path} does not match the model"]
        if missing:
            parts.append(f"missing keys: {short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {short_list(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {short_list(shapes, 4)}")
        raise CheckpointError("; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model


def load_weights(
    model: nn.Module,
    path: str | Path,
    what: str,
    adapt: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None = None,
) -> nn.Module:
    """Read ``path`` (:func:`read_state_dict`), strip wrapper prefixes, ``adapt`` the layout and
    load it into ``model`` exactly (:func:`load_exact`)."""
    state = strip_prefixes(read_state_dict(path, what), set(model.state_dict()), adapt)
    return load_exact(model, state, Path(path), what)


__all__ = [
    "PREFIXES",
    "STATE_KEYS",
    "CheckpointError",
    "load_exact",
    "load_weights",
    "read_state_dict",
    "strip_prefixes",
]
