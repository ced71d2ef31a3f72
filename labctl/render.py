"""Pure rendering: functions that turn results into text. Only cli.py prints."""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

from .capture import CaptureStats
from .lab import ServiceState, UpReport


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dotted(label: str, value: str, width: int = 24) -> str:
    """Book-style aligned line: `Cipher chosen.......... TLS_AES_256_GCM_SHA384`."""
    return f"{label:.<{width}} {value}"


def status_text(project: str, net: str, states: list[ServiceState]) -> str:
    rows = [(s.service, s.address or "-", s.state, s.health, s.role or "-") for s in states]
    header = f"lab '{project}'" + (f" on {net}.0/24" if net else "")
    return header + "\n" + table(("SERVICE", "ADDRESS", "STATE", "HEALTH", "ROLE"), rows)


def status_json(project: str, net: str, states: list[ServiceState], compose: str) -> str:
    up = bool(states) and all(s.state == "running" and s.health == "healthy" for s in states)
    return json.dumps({
        "schema": "tlslab.status/1",
        "project": project,
        "subnet": f"{net}.0/24" if net else None,
        "compose": compose,
        "up": up,
        "services": [dataclasses.asdict(s) for s in states],
    }, indent=2)


def up_text(report: UpReport) -> str:
    lines = [f"lab '{report.project}' is up in {report.seconds:.1f} s", ""]
    lines.append(status_text(report.project, report.net, report.services).split("\n", 1)[1])
    lines += ["", "next: `labctl client server.lab.test --secret hunter2` runs one exchange;",
              "      `labctl capture start NAME` / `stop NAME --out FILE.pcap` records the wire."]
    return "\n".join(lines)


def up_json(report: UpReport) -> str:
    return json.dumps({
        "schema": "tlslab.up/1",
        "project": report.project,
        "subnet": f"{report.net}.0/24",
        "seconds": round(report.seconds, 3),
        "steps": [{"step": name, "outcome": outcome} for name, outcome in report.steps],
        "services": [dataclasses.asdict(s) for s in report.services],
    }, indent=2)


def capture_text(stats: CaptureStats, saved: str | None) -> str:
    lines = [dotted("capture", stats.name),
             dotted("packets", str(stats.packets)),
             dotted("bytes", str(stats.bytes)),
             dotted("dropped by kernel", str(stats.dropped_by_kernel)),
             dotted("complete", "yes" if stats.complete else "NO — do not trust conclusions drawn from it")]
    if saved:
        lines.append(dotted("saved to", saved))
    return "\n".join(lines)


def client_text(report: dict) -> str:
    if not report.get("ok"):
        lines = [dotted("server address", report["address"])] if report.get("address") else []
        lines.append(dotted("refused", f"{report.get('error_kind')}: {report.get('error')}"))
        return "\n".join(lines)
    lines = [dotted("connected to", f"{report['address']}:{report['port']}")]
    if report.get("tls"):
        cert = report.get("peer_certificate") or {}
        subject = ", ".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn) or "(not checked)"
        lines += [dotted("TLS version", report["version"]),
                  dotted("cipher chosen", report["cipher"]),
                  dotted("certificate", subject),
                  dotted("verified", "yes" if report.get("verify") else "NO (insecure client)")]
    else:
        lines.append(dotted("TLS", "none: everything below crossed the wire in clear"))
    lines += [dotted("response", report["status"]), dotted("body bytes", str(report["body_bytes"]))]
    return "\n".join(lines)
