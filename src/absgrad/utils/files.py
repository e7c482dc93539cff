"""Checks that a path the user gave (or a case needs) exists, with a message saying what belongs there;
absgrad's cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from absgrad.errors import MissingFileError


def require_dir(path: Path | str | None, what: str, expected: str, source: str) -> Path:
    """Return ``path`` as a directory or raise ``MissingFileError`` saying what belongs there."""
    if path is None:
        raise MissingFileError(
            f"no {what} given: pass data=PATH. Expected: {expected}. Source: {source}"
        )
    p = Path(path).expanduser()
    if not p.is_dir():
        raise MissingFileError(f"{what} not found at {p}. Expected: {expected}. Source: {source}")
    return p


def require_file(path: Path | str, what: str, expected: str, source: str) -> Path:
    """Return ``path`` as a file or raise ``MissingFileError`` saying what it is and where from."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingFileError(f"{what} not found at {p}. Expected: {expected}. Source: {source}")
    return p


def absgrad_cache_dir() -> Path:
    """absgrad's cache folder: ``$ABSGRAD_CACHE`` if set, else ``~/.cache/absgrad``."""
    env = os.environ.get("ABSGRAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "absgrad"


__all__ = ["absgrad_cache_dir", "require_dir", "require_file"]
