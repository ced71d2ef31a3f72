"""The `labctl` command's entry point, kept free of heavy imports.

Importing labctl.cli pulls in the Docker SDK and requests (a few tenths of a
second); a Ctrl-C in that time must end the command with the same one line
as a Ctrl-C later, not an import traceback. So this module installs the
signal handling and imports the rest inside the same ``try``.
"""

from __future__ import annotations

import os
import signal
import sys

from .interrupts import SIGNALS, Terminated, raise_for


def _quiet_exit(status: int) -> None:
    """End the process now, with STATUS. The command is over and everything it started on the lab
    has been stopped: Python's own shutdown (finalizers, a timer thread, a signal landing in either)
    has nothing left to do for labctl, and only ways to print a stray traceback or to lose the
    status, so it is skipped."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def main() -> None:
    """Console-script entry point: run labctl, exit with its status (130 on Ctrl-C, 143 on SIGTERM)."""
    # Signals wait while labctl's modules load (a few tenths of a second): one
    # landing inside an import can be swallowed by importlib or leave a traceback.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        try:
            for s in SIGNALS:
                signal.signal(s, raise_for)    # SIGTERM's default would end labctl with no cleanup
            for stream in (sys.stdout, sys.stderr):
                # A path or argument that is not UTF-8 is printed escaped, never a UnicodeEncodeError.
                if hasattr(stream, "reconfigure"):
                    stream.reconfigure(errors="backslashreplace")
            from .cli import main as cli_main
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)     # a held signal lands now, in this try
        status = cli_main()
    except Terminated:
        print("labctl: terminated", file=sys.stderr, flush=True)
        status = 143
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr, flush=True)
        status = 130
    except BrokenPipeError:
        # `labctl run verify | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    _quiet_exit(status)
