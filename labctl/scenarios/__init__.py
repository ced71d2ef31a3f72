"""The lab's scenarios: one module each, all of one shape (the Scenario protocol below).

A scenario module opens with a docstring that says what it demonstrates and
what to look for in the capture, declares the checks it makes (CHECKS, in the
order it reports them), and keeps its logic small: the shared steps live in
labctl.runner. Its `run(lab, options)` returns a labctl.verdict.Result that
brings its own terminal and report views, so nothing outside this package
names a scenario. What a module must define, and may, is under Scenario.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Callable

from ..errors import UsageError
from ..runner import KEYLOG_CHECK

if TYPE_CHECKING:
    from ..lab import Lab
    from ..verdict import Result

# In the order `labctl run all` runs them: the story goes from clear to protected.
NAMES = ("plaintext", "tls", "tls12", "verify", "mitm", "dns-spoof", "sslstrip", "downgrade", "traffic-analysis",
         "forward-secrecy", "encrypted-dns", "offload")


@dataclass(frozen=True)
class Options:
    """What `labctl run` passes on to a scenario. A scenario reads only the options its OPTIONS name."""

    cases: tuple[str, ...] = ()         # --case (verify): the cases to run; () for all
    client_cmd: str | None = None       # --client-cmd (verify): an external client to grade

    def given(self) -> list[str]:
        """The options set, by their command-line names."""
        return [name for name, value in (("--case", self.cases), ("--client-cmd", self.client_cmd))
                if value not in ((), None)]


@dataclass(frozen=True)
class Scenario:
    """One scenario as the rest of labctl sees it, read from its module.

    Every module defines NAME (as typed: `labctl run NAME`), TITLE (one line,
    for headings), CHECKS (the names of the checks its result reports, in
    order) and `run(lab, options) -> Result`; its docstring's summary line
    (PEP 257) reads "NAME: SUMMARY." and gives the one line `labctl scenarios`
    shows. Where it differs from the default it also defines OPTIONS (the run
    options it reads, e.g. "--case") and `check(options)` (refuse bad options
    before anything runs). A scenario whose checks include KEYLOG_CHECK has a
    client that writes an NSS key log, which `run NAME --keylog FILE` saves.
    """

    name: str
    title: str
    summary: str
    checks: tuple[str, ...]
    run: Callable[[Lab, Options], Result] = field(repr=False)
    keylog: bool = False
    options: tuple[str, ...] = ()
    check: Callable[[Options], None] = field(repr=False, default=lambda options: None)


def _scenario(module: ModuleType) -> Scenario:
    """The one place that reads a scenario module, with the defaults of what it may leave out."""
    summary = (module.__doc__ or "").split("\n", 1)[0].removeprefix(f"{module.NAME}: ").rstrip(".")
    checks = tuple(module.CHECKS)
    return Scenario(module.NAME, module.TITLE, summary, checks, module.run, KEYLOG_CHECK in checks,
                    tuple(getattr(module, "OPTIONS", ())), getattr(module, "check", Scenario.check))


def load(name: str) -> Scenario:
    """The scenario called NAME; UsageError listing the valid names for anything else."""
    if name not in NAMES:
        raise UsageError(f"unknown scenario {name!r}; the scenarios are: {', '.join(NAMES)} (or 'all')")
    return _scenario(importlib.import_module(f"{__name__}.{name.replace('-', '_')}"))


def all_scenarios() -> list[Scenario]:
    return [load(name) for name in NAMES]


def check(scenario: Scenario, options: Options) -> None:
    """Refuse options SCENARIO does not read (they would be silently ignored), then its own check."""
    unread = [option for option in options.given() if option not in scenario.options]
    if unread:
        raise UsageError(f"{unread[0]} belongs to `labctl run {readers(unread[0])}`, not to `run {scenario.name}`")
    scenario.check(options)


def readers(option: str) -> str:
    """The scenarios that read OPTION, as `labctl run` takes them ("verify")."""
    return " / ".join(s.name for s in all_scenarios() if option in s.options)
