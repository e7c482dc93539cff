"""Paths the user gave: checks that an input exists (saying what belongs there), the one rule
that turns a failure to write an output (no permission, a read-only or full disk, a name too
long) into an :class:`OutputError` naming the place, and absgrad's cache folder."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from absgrad.errors import AbsgradError, MissingFileError

#: errors only writing can cause: whatever file they name, they are the output's
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_WRITE_ONLY = {*_DISK_FULL, errno.EROFS}


class OutputError(AbsgradError, OSError):
    """An output (a run folder, a report, a map) cannot be written; names the place and why."""


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


def _related(filename: object, place: Path) -> bool:
    """Whether ``filename`` is ``place``, inside it or a folder above it."""
    if not isinstance(filename, (str, bytes, os.PathLike)):
        return False
    a, b = os.path.abspath(os.fsdecode(filename)), os.path.abspath(place)
    return a == b or b.startswith(a.rstrip(os.sep) + os.sep) or a.startswith(b + os.sep)


@contextlib.contextmanager
def output_errors(place: str | Path, what: str, *, full_hint: str = "") -> Iterator[None]:
    """Turn an ``OSError`` of writing ``place`` (the output folder or file ``what``, e.g.
    ``"the run folder"``) into an :class:`OutputError` naming it and why.

    An error counts as the output's when the file it names is ``place``, inside it or a folder
    above it, or when only writing can cause it (a full disk, a read-only file system: then the
    file it names is said). ``full_hint`` is added when the disk is full (e.g. how to resume).
    Other errors pass unchanged.
    """
    place = Path(place)
    try:
        yield
    except AbsgradError:
        raise
    except OSError as e:
        names = [os.fsdecode(f) for f in (e.filename, e.filename2) if f is not None]
        ours = any(_related(f, place) for f in names)
        if e.errno not in _WRITE_ONLY and not ours:
            raise
        reason = e.strerror or str(e) or type(e).__name__
        if e.errno == errno.ENAMETOOLONG:
            reason += " (file systems allow names of up to 255 bytes)"
        hint = full_hint if e.errno in _DISK_FULL else ""
        if names and not ours:  # a full or read-only disk elsewhere (a cache)
            raise OutputError(f"cannot write {names[0]}: {reason}{hint}") from e
        at = f" ({names[0]})" if names and names[0] != str(place) else ""
        raise OutputError(f"cannot write {what} {place}: {reason}{at}{hint}") from e


def check_writable(place: str | Path, what: str) -> None:
    """Fail now, with an :class:`OutputError`, when the folder ``place`` (which need not exist
    yet) cannot be written: a file is created and removed in it, or in the nearest existing
    folder above it (nothing is created for a folder that does not exist yet)."""
    place = Path(place)
    with output_errors(place, what):
        folder = place
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(folder))
        try:
            with tempfile.TemporaryFile(dir=folder, prefix=".absgrad-write-check-"):
                pass
        except OSError as e:  # name the folder, not the probe's file
            raise OSError(e.errno, e.strerror, str(folder)) from e


def absgrad_cache_dir() -> Path:
    """absgrad's cache folder: ``$ABSGRAD_CACHE`` if set, else ``~/.cache/absgrad``."""
    env = os.environ.get("ABSGRAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "absgrad"


__all__ = [
    "OutputError",
    "absgrad_cache_dir",
    "check_writable",
    "output_errors",
    "require_dir",
    "require_file",
]
