"""Model specs: one string names a classifier everywhere (CLI, YAML, Python, Ray workers).

=============================  ===================================================================
spec                           model
=============================  ===================================================================
``torchvision:NAME``           ``torchvision.models.get_model(NAME, weights=None)``
``timm:NAME``                  ``timm.create_model(NAME, pretrained=False)``
``package.module:callable``    ``callable()``, any importable factory returning an ``nn.Module``
``path/to/file.py:callable``   the same, from a Python file
=============================  ===================================================================

Parsing and fingerprinting import no torch (the config check uses them); building is
:mod:`absgrad.models.build`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from absgrad.errors import AbsgradError

KINDS = ("torchvision", "timm")


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


__all__ = [
    "KINDS",
    "ModelSpec",
    "ModelSpecError",
    "file_fingerprint",
    "parse_model_spec",
    "spec_fingerprint",
]
