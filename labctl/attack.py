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
from typing import ClassVar

from . import render, report
from .errors import LabError
from .lab import TIMEOUT_SETTING, Lab
from .verdict import Json, Result, verdict_line


def start(lab: Lab, spoof_dns: str | None = None, strip: bool = False) -> None:
    """Seat the attacker on the wire: TLS interception (and DNS spoofing with SPOOF_DNS, "NAME=ADDR"),
    or with STRIP sslstrip of the client's plain HTTP instead. LabError if the wire cannot."""
    if not lab.turn_token:
        raise LabError("the attacker takes its seat only within a run's turn (labctl.turn.taken)")
    argv = ["python3", "/app/attacker.py", "start", "--client", lab.address("client"),
            "--server", lab.address("server"), "--turn", lab.turn_token]
    if spoof_dns:
        argv += ["--spoof-dns", spoof_dns]
    if strip:
        argv.append("--strip")
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


def outcome_lines(report: dict, events: list[dict], secret: str) -> list[str]:
    """One client's side of an interception: its secret, what it got, and the attacker's log of it."""
    port = report.get("local_port")
    mine = [e for e in events if str(e.get("client", "")).endswith(f":{port}")]
    lines = [f"secret   {secret}"]
    if report.get("ok"):
        lines.append(f"client   connected, {report.get('status')}")
    else:
        lines.append(f"client   refused: {report.get('error')}")
    lines.append("attacker's log:")
    for e in mine or [{"event": "nothing"}]:
        lines.append(f"  {e['event']}")
        for key in ("request", "response"):          # what the attacker read in clear, headers first
            if key in e:
                lines += [f"    {line}" for line in str(e[key]).split("\r\n") if line][:7]
        if "error" in e:
            lines.append(f"    {e['error']}")
    return lines


@dataclass
class AttackResult(Result):
    """An attack (or a refusal shown side by side): two panels, notes under them, and the data
    `--json` adds. Scenarios with more to show (a plot, decryption steps) extend ``extra_html``."""

    SCHEMA: ClassVar[str] = "tlslab.attack/1"

    left: tuple[str, list[str]] = field(default_factory=lambda: ("", []))
    right: tuple[str, list[str]] = field(default_factory=lambda: ("", []))
    notes: list[str] = field(default_factory=list)
    data: Json = field(default_factory=dict)
    secrets: list[str] = field(repr=False, default_factory=list)     # the run's random secrets
    revealed: list[str] = field(repr=False, default_factory=list)    # those the attack obtained

    def hidden(self) -> list[str]:
        """The run's secrets that neither crossed the wire in clear nor fell to the attack."""
        return [s for s in self.secrets if s not in self.revealed and not self.observation.find(s.encode())]

    def details(self) -> Json:
        return dict(self.data)

    def text(self) -> str:
        """The two sides in panels, the notes, the checks."""
        (lt, left), (rt, right) = self.left, self.right
        lines = [f"{self.name} — {self.title}", "", render.panels(lt, left, rt, right)]
        if self.notes:
            lines += [""] + self.notes
        lines += [""] + render.check_lines(self.checks)
        lines.append(verdict_line(self))
        return "\n".join(lines)

    def html(self) -> str:
        """The two panels and the notes as HTML, then what the scenario adds (extra_html)."""
        (lt, left), (rt, right) = self.left, self.right
        out = [report.panels_html(lt, report.pre_lines(left), rt, report.pre_lines(right))]
        if self.notes:
            out.append(report.pre_lines(self.notes))
        return "".join(out) + self.extra_html()

    def extra_html(self) -> str:
        """More of the report section than the panels (escaped HTML); none by default."""
        return ""
