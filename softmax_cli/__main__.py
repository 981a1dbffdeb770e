"""The `softmax` program's entry point (the console script and `python -m softmax_cli`).

Only the program sets up the process: a Ctrl-C while Python is still importing Click and the commands ends it
with exit code 130 and one line, not a traceback. Importing the package (a notebook, a test runner) leaves the
signal handlers alone.
"""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    sys.stderr.write("softmax: interrupted\n")
    os._exit(130)


def main() -> None:
    """Run the `softmax` command line in this process, which it ends with the command's exit code."""
    usual = signal.signal(signal.SIGINT, _interrupted_while_starting)
    from .cli import main as run_cli

    signal.signal(signal.SIGINT, signal.default_int_handler if usual is None else usual)  # from here on, Ctrl-C is Click's KeyboardInterrupt: one line, exit 130
    run_cli()


if __name__ == "__main__":
    main()
