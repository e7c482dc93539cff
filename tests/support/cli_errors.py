"""The CLI's answer to a user error: exit status 2 and one line ``absgrad: error: ...``."""

from __future__ import annotations

import pytest

PREFIX = "absgrad: error: "


def assert_user_error(code: int, stderr: str, *names: str) -> str:
    """``code`` and ``stderr`` are a user error's: status 2, no traceback, and the error told in
    one line, ``absgrad: error: ...``, the last of stderr (progress lines such as "loading case
    ..." may come before it), containing each of ``names``; returns that line."""
    assert code == 2, f"exit status {code}, not 2 (a user error); stderr:\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(PREFIX)]
    assert errors == lines[-1:], f"not one closing line '{PREFIX}...':\n{stderr[-2000:]}"
    for name in names:
        assert name in errors[0], f"{name!r} is not named in: {errors[0]}"
    return errors[0]


def user_error(capsys: pytest.CaptureFixture[str], argv: list[str], *names: str) -> str:
    """Run ``absgrad ARGV`` in this process expecting a user error (see
    :func:`assert_user_error`); returns the message line."""
    from absgrad.cli import main

    capsys.readouterr()  # what earlier commands printed is not this one's answer
    code = main(argv)
    return assert_user_error(code, capsys.readouterr().err, *names)
