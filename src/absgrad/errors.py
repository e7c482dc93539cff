"""The project's error type.

Every error caused by the user's input (a bad parameter, a missing or unreadable file, an invalid
config, an incompatible run folder) is an :class:`AbsgradError`. The command line reports these as
one line and exits with status 2; any other exception is a bug and shows its traceback.
``AbsgradError`` subclasses ``ValueError`` so that existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class AbsgradError(ValueError):
    """An error in the user's input, reported to the user without a traceback."""


class MissingFileError(AbsgradError, FileNotFoundError):
    """A file or folder the user named (or that a case needs) does not exist; says where from."""


class InputError(AbsgradError):
    """An input tensor, map or target is invalid; the message names it."""


class InputTypeError(InputError, TypeError):
    """An input has the wrong type (also a ``TypeError``)."""


def excerpt(value: object, limit: int = 160) -> str:
    """A short ``repr`` of a user's value for an error message: nested containers and long
    strings are cut (``reprlib``), and the result is at most ``limit`` characters, so that a
    huge or self-referencing value (a YAML alias bomb) never floods the terminal."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 6, 6, 6, 6
    r.maxstring = r.maxother = limit
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["AbsgradError", "InputError", "InputTypeError", "MissingFileError", "excerpt"]
