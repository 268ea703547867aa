"""`python -m sparsity_lib`: the command line (sparsity_lib.cli).

A Ctrl-C while the command line is still importing ends like one during a command: one line, exit 130.
(One during `import sparsity_lib` itself, which Python runs before this file, is the package's to catch.)
"""
import signal
import sys

try:
    from .cli import main

    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on `main` maps Ctrl-C to 130
    code = main()
except KeyboardInterrupt:
    print("error: interrupted (Ctrl-C) while starting; nothing was changed", file=sys.stderr)
    code = 130
raise SystemExit(code)
