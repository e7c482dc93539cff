"""``python -m absgrad``: the ``absgrad`` command (as ``python -m absgrad.cli``)."""

import sys

from absgrad.cli import console_main

sys.exit(console_main())
