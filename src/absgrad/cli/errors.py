"""The command line's own error (a bad combination of flags)."""

from __future__ import annotations

from absgrad.errors import AbsgradError


class UserError(AbsgradError):
    """An error caused by the command line or its inputs (reported without a traceback)."""
