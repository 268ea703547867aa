"""Ctrl-C while `python -m sparsity_lib` is still importing the library (seconds: torch, pandas, ...).

Python imports the package before sparsity_lib/__main__.py runs, so nothing there can catch it. Imported
first by the package: when run as `python -m sparsity_lib` (sys.argv[0] is '-m' while the package
imports), SIGINT writes the CLI's one line and ends the process with 130 at once; nothing has been written
yet, and an exception raised inside an import could be swallowed. __main__.py restores the default handler.
"""
from __future__ import annotations

import os
import signal
import sys

__all__ = ["interrupted_while_starting"]


def interrupted_while_starting(_signum, _frame) -> None:
    sys.stderr.write("error: interrupted (Ctrl-C) while starting; nothing was changed\n")
    os._exit(130)


if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, interrupted_while_starting)
