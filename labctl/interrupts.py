"""Ctrl-C and SIGTERM that never leave the lab half-changed.

labctl starts things that outlive it unless it stops them: a tcpdump on the
wire, the attacker's iptables rules and proxy, a client run in the client
container. A signal that lands while one of them is being started or stopped
would leave it behind (the exec in flight carries on inside the container,
whatever happens to labctl). So the steps that start and stop such things run
``shielded()``: a SIGINT or SIGTERM arriving then is held and raised as soon
as the step is over, when the code around it knows what to undo. Inside a
shielded step, ``interruptible()`` marks the long waits (the client's
exchange) where a signal may land at once.

SIGTERM is turned into :class:`Terminated`, a KeyboardInterrupt, so the same
``finally`` blocks run for both; the CLI exits 130 for SIGINT and 143 for
SIGTERM (128 + the signal number, as shells report). ``raise_for`` is the one
handler that does it: labctl.entry installs it before anything else of labctl
is imported, and the shield below raises through it.

This module imports only the standard library's lightest parts: labctl.entry
imports it before it blocks signals for the rest of labctl's imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Callable, Iterator, Union

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What signal.getsignal returns: a function, SIG_DFL/SIG_IGN, or None for a
# handler that was not set from Python.
Handler = Union[Callable[[int, Union[FrameType, None]], object], int, signal.Handlers, None]
# Code where an exception raised by a signal handler is printed and swallowed
# ("Exception ignored in ...") instead of reaching labctl's cleanup: an import
# lock's weakref callback, a finalizer. A signal landing there is sent again
# a moment later.
_SWALLOWING = ("<frozen importlib._bootstrap>", "weakref.py")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT raises KeyboardInterrupt, so the same cleanup runs for both."""


def raise_for(signum: int, frame: object) -> None:
    """The SIGINT/SIGTERM handler: KeyboardInterrupt or Terminated, raised where it can be caught."""
    code = getattr(frame, "f_code", None)
    if code is not None and code.co_filename.endswith(_SWALLOWING):
        threading.Timer(0.02, os.kill, (os.getpid(), signum)).start()
        return
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class _Shield:
    def __init__(self) -> None:
        self.pending: int | None = None
        self.count = 0
        self.depth = 0
        self.saved: dict[signal.Signals, Handler] = {}

    def _hold(self, signum: int, _frame: object) -> None:
        self.pending = signum
        self.count += 1
        if self.count == 2:
            # A second signal while cleaning up: say what is happening; a third gives up.
            print("labctl: still stopping what this command started on the lab (a third Ctrl-C or SIGTERM "
                  "stops waiting; the wire then stops the capture and the attacker itself)",
                  file=sys.stderr, flush=True)
        elif self.count > 2:
            raise_for(signum, None)


_shield = _Shield()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise it (KeyboardInterrupt or Terminated).

    Nested blocks hold until the outermost ends. A no-op outside the main
    thread (Python delivers signals only there).
    """
    if not _main_thread():
        yield
        return
    outermost = _shield.depth == 0
    if outermost:
        _shield.saved = {s: signal.getsignal(s) for s in SIGNALS}
        _shield.pending = None
        _shield.count = 0
        for s in SIGNALS:
            signal.signal(s, _shield._hold)
    _shield.depth += 1
    try:
        yield
    finally:
        _shield.depth -= 1
        if outermost:
            _restore(_shield.saved)
            pending, _shield.pending = _shield.pending, None
            if pending is not None and sys.exc_info()[0] is None:
                raise_for(pending, None)
            # With an exception already on its way out (an interrupt among them),
            # the held signal adds nothing: the command is ending either way.


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Inside ``shielded()``: let a signal land at once during this block (a long wait).

    A signal held before the block is raised on entry.
    """
    if not _main_thread() or _shield.depth == 0:
        yield
        return
    held: dict[signal.Signals, Handler] = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, raise_for)
    try:
        pending, _shield.pending = _shield.pending, None
        _shield.count = 0
        if pending is not None:
            raise_for(pending, None)
        yield
    finally:
        _restore(held)


def _restore(saved: dict[signal.Signals, Handler]) -> None:
    for s, handler in saved.items():
        # None (a handler set outside Python) cannot be given back; never the case for these two.
        signal.signal(s, signal.SIG_DFL if handler is None else handler)
