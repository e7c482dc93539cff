"""Model specs: one string names a classifier everywhere (CLI, YAML, Python, Ray workers).

=============================  ===================================================================
spec                           model
=============================  ===================================================================
``torchvision:NAME``           ``torchvision.models.get_model(NAME, weights=...)``
``timm:NAME``                  ``timm.create_model(NAME, pretrained=...)``
``hf:ORG/NAME[@REVISION]``     ``transformers.AutoModelForImageClassification`` of a Hub repo
``hf:/path/to/folder``         the same, from a folder written by ``save_pretrained``
``package.module:callable``    ``callable()``, any importable factory returning an ``nn.Module``
``path/to/file.py:callable``   the same, from a Python file
=============================  ===================================================================

Which weights a spec gets (a file, the library's published ``pretrained`` weights, ``random``)
is :mod:`absgrad.models.pretrained`. Parsing and fingerprinting import no torch (the config
check uses them); building is :mod:`absgrad.models.build`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from absgrad.errors import AbsgradError

#: The libraries whose model names a spec may give (``timm:resnet18``).
KINDS = ("torchvision", "timm", "hf")
#: A Hugging Face Hub repo id with an optional revision: ``ORG/NAME`` or ``NAME``, ``@REV``.
_HUB_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+(?:@[\w./-]+)?$")


class ModelSpecError(AbsgradError):
    """A model spec string cannot be parsed or resolved; the message says which part."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: ``kind`` is ``torchvision``, ``timm``, ``hf`` or ``callable``; ``name``
    the model name, the Hub repo (``ORG/NAME[@REV]``) or local folder (absolute) of ``hf``, or
    ``module:attribute`` (a ``.py`` path made absolute)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return self.name if self.kind == "callable" else f"{self.kind}:{self.name}"

    @property
    def is_file(self) -> bool:
        return self.kind == "callable" and self.name.rsplit(":", 1)[0].endswith(".py")

    @property
    def is_local(self) -> bool:
        """An ``hf:`` spec naming a folder on this machine (not a Hub repo)."""
        return self.kind == "hf" and Path(self.name).is_absolute()

    @property
    def hub_repo(self) -> tuple[str, str | None]:
        """``(repo id, revision or None)`` of an ``hf:ORG/NAME[@REV]`` spec."""
        repo, _, rev = self.name.partition("@")
        return repo, rev or None


def parse_model_spec(text: str | ModelSpec) -> ModelSpec:
    """Parse ``torchvision:NAME``, ``timm:NAME``, ``module.path:callable`` or ``file.py:callable``.

    A ``.py`` path is resolved to an absolute path (so another process finds the same file).
    """
    if isinstance(text, ModelSpec):
        return text
    if not isinstance(text, str) or ":" not in text:
        raise ModelSpecError(
            f"model spec {text!r} is not one of torchvision:NAME, timm:NAME, hf:ORG/NAME, "
            "hf:/path/to/folder, package.module:factory or path/to/file.py:factory"
        )
    if text.strip().startswith("hf:"):
        return _parse_hf(text, text.strip()[3:].strip())
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


def _parse_hf(text: str, rest: str) -> ModelSpec:
    """``hf:ORG/NAME[@REV]`` (a Hub repo) or ``hf:PATH`` (a local folder: absolute, ``./``,
    ``../``, ``~``, or an existing folder, as ``from_pretrained`` decides)."""
    if not rest:
        raise ModelSpecError(f"model spec {text!r}: give hf:ORG/NAME or hf:/path/to/folder")
    path = Path(rest).expanduser()
    local = rest.startswith(("/", "./", "../", "~", ".\\")) or path.is_dir()
    if local:
        if not path.is_dir():
            raise ModelSpecError(f"model spec {text!r}: folder {path} not found")
        if not (path / "config.json").is_file():
            raise ModelSpecError(
                f"model spec {text!r}: {path} holds no config.json (a folder written by "
                "save_pretrained of a transformers image classifier)"
            )
        return ModelSpec("hf", str(path.resolve()))
    if not _HUB_ID.match(rest):
        raise ModelSpecError(
            f"model spec {text!r}: expected hf:ORG/NAME (a Hugging Face Hub repo, optionally "
            "@REVISION) or hf:/path/to/folder"
        )
    return ModelSpec("hf", rest)


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
