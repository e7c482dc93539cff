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
import importlib.machinery
import importlib.util
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from absgrad.errors import AbsgradError

#: The libraries whose model names a spec may give (``timm:resnet18``).
KINDS = ("torchvision", "timm", "hf")
#: A Hugging Face Hub repo id with an optional revision: ``ORG/NAME`` or ``NAME``, ``@REV``.
_HUB_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+(?:@[\w./-]+)?$")
#: The most source files of a factory's package hashed into the run's identity (beyond that,
#: only the factory's own module; the parameters' fingerprint still guards the model).
MAX_SOURCE_FILES = 500


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
    """A hash of the code a spec builds from (its code is part of the model), else None.

    ``file.py:factory``: the file. ``package.module:factory``: the module's source file and,
    for a module of a package outside ``site-packages``, every ``.py`` file of its top-level
    package (up to :data:`MAX_SOURCE_FILES`); an installed package counts by its version.
    Found without importing the module (only a parent package's ``__init__`` may run when the
    file system search does not find it). None when the source cannot be found.
    """
    if spec.kind != "callable":
        return None
    if spec.is_file:
        return file_fingerprint(Path(spec.name.rsplit(":", 1)[0]))
    files, installed = module_sources(spec.name.rsplit(":", 1)[0])
    if not files:
        return None
    h = hashlib.sha256(installed.encode())
    root = _common_root(files)
    for f in files:
        h.update(f"{f.relative_to(root).as_posix()}={file_fingerprint(f)};".encode())
    return h.hexdigest()[:16]


def _common_root(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files]))


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of module ``name`` found on ``sys.path`` (then the working folder, where
    building looks too) without executing any module, else through the import system."""
    parts = name.split(".")
    search: list[str] | None = [*sys.path, os.getcwd()]
    found = None
    for i in range(len(parts)):
        try:
            found = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
        except (ImportError, ValueError):
            found = None
        if found is None:
            break
        search = list(found.submodule_search_locations or [])
    if found is None:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # a parent package failed to import: building says why
            return None
    return found


def module_sources(name: str) -> tuple[list[Path], str]:
    """The source files that decide module ``name`` (see :func:`spec_fingerprint`) and, for a
    module installed in ``site-packages``, its distribution and version (else ``""``)."""
    found = _find_spec(name)
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return [], ""
    origin = Path(found.origin).resolve()
    top = _find_spec(name.split(".")[0])
    installed = _installed_version(name.split(".")[0], origin)
    if installed or top is None or not top.submodule_search_locations:
        return [origin], installed
    files = sorted(
        p.resolve()
        for loc in top.submodule_search_locations
        for p in Path(loc).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    if len(files) > MAX_SOURCE_FILES:
        return [origin], installed
    return files, installed


def _installed_version(top: str, origin: Path) -> str:
    """``"dist==version"`` when ``origin`` lies in an installed environment, else ``""``."""
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    if not any(origin.is_relative_to(Path(r).resolve()) for r in roots if r):
        return ""
    from importlib import metadata

    try:  # the distribution usually has the import name (torchvision, timm)
        return f"{top}=={metadata.version(top)}"
    except metadata.PackageNotFoundError:
        pass
    dists = metadata.packages_distributions().get(top) or []  # reads every dist: ~1 s
    versions = []
    for d in sorted(set(dists)):
        try:
            versions.append(f"{d}=={metadata.version(d)}")
        except metadata.PackageNotFoundError:
            continue
    return ",".join(versions) or f"{top} (installed)"


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
    "module_sources",
    "parse_model_spec",
    "spec_fingerprint",
]
