"""The attacker's seat on the wire, and what attack scenarios report.

The wire forwards everything between the lab's hosts; `attacker.py` on the
wire (services/wire/attacker.py) makes it intercept instead: iptables
REDIRECT hands the client's TLS connections to a proxy holding the
attacker's own certificate for server.lab.test, and, if asked, the client's
DNS queries to a spoofer. What the attacker obtained is its own log, read
back here: verdicts are computed from it and from the capture, never assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .capture import CaptureStats
from .errors import LabError
from .lab import TIMEOUT_SETTING, Lab
from .runner import Check
from .tls.analyzer import Observation


def start(lab: Lab, spoof_dns: str | None = None) -> None:
    if not lab.turn_token:
        raise LabError("the attacker takes its seat only within a run's turn (labctl.turn.taken)")
    argv = ["python3", "/app/attacker.py", "start", "--client", lab.address("client"),
            "--server", lab.address("server"), "--turn", lab.turn_token]
    if spoof_dns:
        argv += ["--spoof-dns", spoof_dns]
    status, out, err = lab.exec("wire", argv)
    if status != 0:
        stop(lab)
        if status in (124, 137):
            raise LabError(f"the wire could not take the attacker's seat within {lab.timeout:g} s "
                           f"({TIMEOUT_SETTING} sets it)")
        raise LabError(f"the wire could not take the attacker's seat: {_reason(status, out, err)}")


def stop(lab: Lab) -> list[dict]:
    """Remove the interception and return everything the attacker logged."""
    status, out, err = lab.exec("wire", ["python3", "/app/attacker.py", "stop"])
    try:
        return json.loads(out)["log"]
    except (json.JSONDecodeError, KeyError):
        if status in (124, 137):
            raise LabError(f"the attacker did not stop within {lab.timeout:g} s ({TIMEOUT_SETTING} sets it)") \
                from None
        raise LabError(f"the attacker's log could not be read: {_reason(status, out, err)}") from None


def _reason(status: int, out: str, err: str) -> str:
    """What attacker.py said went wrong, as one line."""
    try:
        said = json.loads(out.strip().splitlines()[-1]).get("error") if out.strip() else None
    except (json.JSONDecodeError, AttributeError):
        said = None
    text = said or (err.strip().splitlines() or out.strip().splitlines() or [f"exit status {status}"])[-1]
    return " ".join(str(text).split())[:200]


def obtained(events: list[dict], secret: str) -> list[dict]:
    """The attacker's log entries that contain the secret."""
    return [e for e in events if secret in json.dumps(e)]


@dataclass
class AttackResult:
    name: str
    title: str
    checks: list[Check]
    stats: CaptureStats
    observation: Observation = field(repr=False)
    left: tuple[str, list[str]] = ("", [])
    right: tuple[str, list[str]] = ("", [])
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    pcap: bytes = field(repr=False, default=b"")
    keylog: str = field(repr=False, default="")
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {"schema": "tlslab.attack/1", "scenario": self.name, "title": self.title, "passed": self.passed,
                "seconds": round(self.seconds, 3), "checks": [c.to_dict() for c in self.checks],
                "capture": {"packets": self.stats.packets, "bytes": self.stats.bytes,
                            "dropped_by_kernel": self.stats.dropped_by_kernel, "complete": self.stats.complete},
                **self.data}
