"""``python -m absgrad.cli``: the ``absgrad`` command."""

import sys

from absgrad.cli import console_main

sys.exit(console_main())
