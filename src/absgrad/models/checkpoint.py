"""Checkpoints: reading a weights file into a state dict, and loading it into a model exactly.

A weights file is a state dict, a checkpoint holding one under a usual key (``state_dict``,
``model_state_dict``, ``model``, ``net``, ...), or a TorchScript file; nothing is downloaded.
Key prefixes left by wrappers (``module.``, ``model.``, ``_orig_mod.``) are stripped where that
matches the model; any missing, unexpected or mis-shaped key is a :class:`CheckpointError`
listing them.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from absgrad.errors import AbsgradError, MissingFileError

STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "state_dict_ema")
PREFIXES = ("module.", "model.", "_orig_mod.")


class CheckpointError(AbsgradError):
    """A checkpoint's keys or shapes do not match the model; the message lists the keys."""


def read_checkpoint(path: Path, what: str) -> object:
    """``torch.load`` a local checkpoint on the CPU with ``weights_only=True``."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise CheckpointError(f"{what} checkpoint {path} is an empty file (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnicodeDecodeError:  # checkpoints pickled by Python 2
        return torch.load(path, map_location="cpu", weights_only=True, encoding="latin1")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(
            f"cannot read {what} checkpoint {path}: {type(e).__name__}: "
            f"{(str(e).splitlines() or ['(no message)'])[0]}. "
            "Expected a file written by torch.save holding a state dict (or a dict with a "
            "'state_dict' entry) of tensors."
        ) from e


def unwrap_state_dict(obj: object, path: Path, what: str) -> dict[str, Tensor]:
    """The tensor dict inside a checkpoint: itself, or its ``state_dict``/``model``-like entry.

    A leading ``module.`` (from ``nn.DataParallel``) is stripped from every key.
    """
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(v, Tensor) for v in obj.values())
    ):
        raise CheckpointError(
            f"{what} checkpoint {path} holds no state dict: expected a dict of tensors or a dict "
            f"with a 'state_dict' entry, got {type(obj).__name__}"
            + (f" with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, Mapping) else "")
        )
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def short_list(keys: list[str], n: int = 8) -> str:
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
