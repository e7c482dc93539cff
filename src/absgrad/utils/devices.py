"""Which device ``--device auto`` means on this machine, how a device is shown, and where a
model lives."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def best_device() -> str:
    """``cuda`` when PyTorch sees a CUDA GPU, else ``mps`` (Apple silicon), else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def describe_device(name: str | torch.device) -> str:
    """``cuda:0 (NVIDIA H200)``, ``mps`` or ``cpu``: the device with its GPU's name."""
    dev = torch.device(name)
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"{dev} ({torch.cuda.get_device_name(index)})"
    return str(dev)


def model_device(model: object) -> torch.device:
    """The device of a model's first parameter (or buffer); the CPU for a model with neither,
    or for a callable that is not an ``nn.Module``."""
    if isinstance(model, nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            return t.device
    return torch.device("cpu")


__all__ = ["best_device", "describe_device", "model_device"]
