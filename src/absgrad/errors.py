"""The project's error type.

Every error caused by the user's input (a bad parameter, a missing or unreadable file, an invalid
config, an incompatible run folder) is an :class:`AbsgradError`. The command line reports these as
one line and exits with status 2; any other exception is a bug and shows its traceback.
``AbsgradError`` subclasses ``ValueError`` so that existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from collections.abc import Callable


class AbsgradError(ValueError):
    """An error in the user's input, reported to the user without a traceback."""


class MissingFileError(AbsgradError, FileNotFoundError):
    """A file or folder the user named (or that a case needs) does not exist; says where from."""


class InputError(AbsgradError):
    """An input tensor, map or target is invalid; the message names it."""


class InputTypeError(InputError, TypeError):
    """An input has the wrong type (also a ``TypeError``)."""


class ArgumentError(AbsgradError):
    """A bad argument of a call, named as the caller knows it.

    The message writes each argument it names as ``{name}``: ``str(e)`` reads
    ``"target 9 is out of range ..."`` and :meth:`render` lets the command line say
    ``"--target 9 is out of range ..."`` from the same error.
    """

    def __init__(self, template: str, *names: str) -> None:
        self.template = template
        self.names = names
        super().__init__(self.render(str))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each ``{name}`` written as ``name(name)``."""
        text = self.template
        for n in self.names:
            text = text.replace("{" + n + "}", name(n))
        return text


def first_line(e: BaseException, limit: int | None = 200, empty: str = "") -> str:
    """The first line of an exception's message for a one-line error, at most ``limit``
    characters (None: whole), ``empty`` when the message is empty."""
    return (str(e).strip().splitlines() or [empty])[0][:limit]


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


__all__ = [
    "AbsgradError",
    "ArgumentError",
    "InputError",
    "InputTypeError",
    "MissingFileError",
    "excerpt",
]
