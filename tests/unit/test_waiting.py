"""wait_for: bounded, says what it waited for; tested with a fake clock."""

from __future__ import annotations

import pytest

from labctl.errors import NotHealthy
from labctl.waiting import NotReady, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_once_the_check_passes():
    clock = FakeClock()
    answers = iter([NotReady("starting"), NotReady("starting"), "healthy"])

    def check() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(check, what="server", timeout=10, interval=0.5, clock=clock, sleep=clock.sleep) == "healthy"
    assert clock.sleeps == [0.5, 0.5]


def test_gives_up_at_the_deadline_naming_what_and_why():
    clock = FakeClock()

    def check() -> None:
        raise NotReady("health is 'starting'")

    with pytest.raises(NotHealthy, match=r"^server not ready after 30 s: health is 'starting' — see `labctl logs server`$"):
        wait_for(check, what="server", timeout=30, interval=1, clock=clock, sleep=clock.sleep,
                 hint="see `labctl logs server`")
    assert 29 <= clock.now <= 31


def test_other_errors_are_not_retried():
    clock = FakeClock()
    calls = []

    def check() -> None:
        calls.append(1)
        raise ValueError("broken for good")

    with pytest.raises(ValueError):
        wait_for(check, what="x", timeout=30, clock=clock, sleep=clock.sleep)
    assert calls == [1]
