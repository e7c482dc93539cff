"""Which device ``--device auto`` means on this machine, and how a device is shown."""

from __future__ import annotations

import torch


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


__all__ = ["best_device", "describe_device"]
