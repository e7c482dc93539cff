"""What a built model is: a fingerprint of its parameters and buffers.

A run records the fingerprint of its model (``run.json``: ``model``) and a resumed run compares
it with the model it builds now, so units scored by two different models never mix: a factory
edited or loading other weights, a weights file replaced, a library that builds the same name
differently.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

#: Bumped when the way the digest is computed changes (a stored one is then not compared).
VERSION = 1


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's values as bytes in standard (contiguous) layout, on the CPU."""
    t = t.detach().to("cpu").contiguous().reshape(-1)  # 0-d tensors cannot change dtype views
    return memoryview(t.view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """``{"version", "digest", "parts", "tensors"}`` of ``model``'s parameters and buffers.

    ``digest``: the SHA-256 prefix over every tensor's dtype, shape and values in
    ``state_dict`` order (names left out, so a wrapper module does not change it); ``parts``:
    the same per top-level submodule (``""`` for the model's own tensors), to say what changed.
    Independent of the device and of the memory format (channels-last).
    """
    whole = hashlib.sha256()
    parts: dict[str, Any] = {}
    n = 0
    for name, t in model.state_dict(keep_vars=False).items():
        head = name.split(".", 1)[0] if "." in name else ""
        part = parts.setdefault(head, hashlib.sha256())
        meta = f"{t.dtype}{tuple(t.shape)};".encode()
        data = _tensor_bytes(t)
        for h in (whole, part):
            h.update(meta)
            h.update(data)
        n += 1
    return {
        "version": VERSION,
        "digest": whole.hexdigest()[:16],
        "parts": {k: h.hexdigest()[:16] for k, h in parts.items()},
        "tensors": n,
    }


def fingerprint_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The submodules whose tensors differ between two fingerprints (``"(the model's own)"``
    for tensors directly on the model); empty when the digests agree or cannot be compared."""
    if old.get("version") != new.get("version") or old.get("digest") == new.get("digest"):
        return []
    a, b = old.get("parts", {}), new.get("parts", {})
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return [k or "(the model's own)" for k in changed] or ["(the order of its tensors)"]


__all__ = ["VERSION", "fingerprint_changes", "model_fingerprint"]
