"""Bounded waits: every wait has a deadline and says what it waited for.

tenacity does the retrying; the clock and the sleep are injectable so the
deadline logic is unit-tested with a fake clock instead of real seconds.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import tenacity

from .errors import NotHealthy

T = TypeVar("T")


class NotReady(Exception):
    """Raised by a check that should be tried again; its message is the reason."""


def wait_for(check: Callable[[], T], *, what: str, timeout: float, interval: float = 0.2,
             hint: str = "", clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``check`` until it returns instead of raising NotReady.

    Gives up after ``timeout`` seconds by ``clock`` with a NotHealthy that names
    ``what``, the time spent and the last reason, followed by ``hint``.
    """
    start = clock()

    def past_deadline(_state: tenacity.RetryCallState) -> bool:
        return clock() - start >= timeout

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(NotReady),
        stop=past_deadline,
        wait=tenacity.wait_fixed(interval),
        sleep=sleep,
        reraise=False,
    )
    try:
        return retrying(check)
    except tenacity.RetryError as exc:
        last = exc.last_attempt.exception()
        spent = clock() - start
        message = f"{what} not ready after {spent:.0f} s: {last}"
        raise NotHealthy(message + (f" — {hint}" if hint else "")) from None
