"""Verdicts: the checks a scenario makes, and what every scenario's run returns.

A Check is one claim about the run, with the evidence read off the captured
bytes (or the attacker's own log): never a constant. A Result is the base of
every scenario's result: its checks, the capture it judged, and two views of
itself, one for the terminal (`text`) and one for the report page (`html`).
The shapes of results (one exchange, an attack, the verify matrix) live
beside the code that makes them; nothing here knows a scenario's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .capture import CaptureStats
    from .sequence import Event, Lanes
    from .tls.analyzer import Observation

# JSON as labctl prints it: what to_dict() returns.
Json = dict[str, object]


@dataclass(frozen=True)
class Check:
    """One claim about a run: its name (as the scenario's CHECKS declare it), whether it held, and why."""

    name: str
    passed: bool
    evidence: str

    def to_dict(self) -> Json:
        return {"name": self.name, "passed": self.passed, "evidence": self.evidence}


@dataclass
class Result:
    """What a scenario's run returns: its checks and the capture they were computed from.

    ``seconds`` is the run's wall time; ``pcap`` and ``keylog`` are saved by
    `run --pcap/--keylog` and beside the report; ``lanes`` says which
    address (and the wire's MAC) is which of the lab's services, for the
    sequence of what the wire saw.
    """

    SCHEMA: ClassVar[str] = "tlslab.result/1"

    name: str
    title: str
    checks: list[Check]
    stats: CaptureStats
    observation: Observation = field(repr=False)
    pcap: bytes = field(repr=False, default=b"")
    keylog: str = field(repr=False, default="")
    seconds: float = 0.0
    lanes: Lanes | None = field(repr=False, default=None)

    @property
    def passed(self) -> bool:
        """True only if there were checks and every one held."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> Json:
        """The JSON document `labctl run NAME --json` prints."""
        return {"schema": self.SCHEMA, "scenario": self.name, "title": self.title, "passed": self.passed,
                "seconds": round(self.seconds, 3), **self.head(),
                "checks": [c.to_dict() for c in self.checks],
                "capture": {"packets": self.stats.packets, "bytes": self.stats.bytes,
                            "dropped_by_kernel": self.stats.dropped_by_kernel, "complete": self.stats.complete},
                **self.details()}

    def head(self) -> Json:
        """Fields a result type puts before its checks in to_dict()."""
        return {}

    def details(self) -> Json:
        """Fields a result type adds after the capture in to_dict()."""
        return {}

    # -- views ----------------------------------------------------------------

    def text(self) -> str:
        """The terminal view `labctl run NAME` prints."""
        raise NotImplementedError

    def html(self) -> str:
        """The report section's body, between the sequence diagram and the verdicts (escaped HTML)."""
        raise NotImplementedError

    def record_notes(self) -> dict[tuple[str, int], str]:
        """What each encrypted record carried, keyed by (direction, stream offset), where the lab knows it."""
        return {}

    def hidden(self) -> list[str]:
        """Secrets of this run that never crossed the wire in clear: the report masks them everywhere."""
        return []

    def diagrams(self, events: list[Event]) -> list[tuple[str, list[Event]]]:
        """The sequence diagrams its report section draws, from all its EVENTS: (caption, events) each."""
        return [("", events)]


def verdict_line(result: Result) -> str:
    """The last line of every terminal view."""
    return f"verdict: {'all checks passed' if result.passed else 'SOME CHECKS FAILED'} ({result.seconds:.2f} s)"
