"""Pure rendering: functions that turn results into text. Only cli.py prints."""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

from .capture import CaptureStats
from .bringup import UpReport
from .lab import DEFAULT_PROJECT, ServiceState
from .tls.constants import version_name


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dotted(label: str, value: str, width: int = 24) -> str:
    """Book-style aligned line: `Cipher chosen.......... TLS_AES_256_GCM_SHA384`."""
    return f"{label:.<{width}} {value}"


def status_text(project: str, net: str, states: list[ServiceState], engine: dict[str, str] | None = None) -> str:
    rows = [(s.service, s.address or "-", s.state, s.health, s.role or "-") for s in states]
    header = f"lab '{project}'" + (f" on {net}.0/24" if net else "")
    if engine:
        header += f"\nengine: {engine_text(engine)}"
    return header + "\n" + table(("SERVICE", "ADDRESS", "STATE", "HEALTH", "ROLE"), rows)


def engine_text(engine: dict[str, str]) -> str:
    """`tcp://127.0.0.1:23750 (DOCKER_HOST), Docker 20.10.24` from status_json's engine object."""
    return f"{engine['host']} ({engine['source']}), {engine['server']}"


def status_json(project: str, net: str, states: list[ServiceState], compose: str,
                engine: dict[str, str] | None = None) -> str:
    up = bool(states) and all(s.state == "running" and s.health == "healthy" for s in states)
    return json.dumps({
        "schema": "tlslab.status/1",
        "project": project,
        "subnet": f"{net}.0/24" if net else None,
        "compose": compose,
        "engine": engine,
        "up": up,
        "services": [dataclasses.asdict(s) for s in states],
    }, indent=2)


def up_text(report: UpReport) -> str:
    lines = [f"lab '{report.project}' is up in {report.seconds:.1f} s", ""]
    lines.append(status_text(report.project, report.net, report.services).split("\n", 1)[1])
    flag = "" if report.project == DEFAULT_PROJECT else f" -p {report.project}"
    lines += ["", f"next: `labctl{flag} run tls` shows TLS 1.3 on the wire; `labctl{flag} client server.lab.test "
                  "--secret hunter2` runs one exchange;",
              f"      `labctl{flag} capture start NAME` / `stop NAME --out FILE.pcap` records the wire."]
    return "\n".join(lines)


def up_json(report: UpReport) -> str:
    return json.dumps({
        "schema": "tlslab.up/1",
        "project": report.project,
        "subnet": f"{report.net}.0/24",
        "seconds": round(report.seconds, 3),
        "engine": report.engine,
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


def certs_text(verb: str, certs_dir, files, tightened: Sequence[str] = ()) -> str:
    """`labctl certs`: each file, who gets it, and what it is with its mode as read from disk
    (CertFile.describe), never a constant."""
    rows = [(str(f.path.relative_to(certs_dir)), f.mounted_in, f.describe()) for f in files]
    lines = [f"certificates {verb} in {certs_dir}"]
    if tightened:
        lines.append(f"made owner-only: {', '.join(tightened)}")
    return "\n".join(lines) + "\n" + table(("FILE", "MOUNTED IN", "WHAT"), rows)


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


# -- scenarios --------------------------------------------------------------------------

PANEL = 47   # inner width of each panel: two side by side fit in 100 columns


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def panels(left_title: str, left: list[str], right_title: str, right: list[str], width: int = PANEL) -> str:
    """Two boxes side by side, like the lab's DESIGN sketch."""
    rows = max(len(left), len(right))
    left = left + [""] * (rows - len(left))
    right = right + [""] * (rows - len(right))

    def top(title: str) -> str:
        return "┌ " + title + " " + "─" * max(0, width - len(title) - 2) + "┐"

    out = [top(left_title) + " " + top(right_title)]
    for l, r in zip(left, right):
        out.append(f"│ {_fit(l, width - 1):<{width - 1}}│ │ {_fit(r, width - 1):<{width - 1}}│")
    out.append("└" + "─" * width + "┘ └" + "─" * width + "┘")
    return "\n".join(out)


def _hex(data: bytes, n: int) -> str:
    return " ".join(f"{b:02x}" for b in data[:n])


def wire_lines(result) -> list[str]:
    """The left panel: real captured bytes (ciphertext records, or the clear request)."""
    obs = result.observation
    lines: list[str] = []
    tls = obs.tls
    if tls:
        notes = getattr(result, "notes", {}) or {}
        # The client's records first: one of them is the request with the secret.
        records = [r for t in tls for r in t.records if r.content_type == 23]
        shown = [r for r in records if r.direction == "c2s"][:3] + [r for r in records if r.direction == "s2c"][:3]
        for r in shown:
            arrow = "↑" if r.direction == "c2s" else "↓"
            lines.append(f"{arrow} {_hex(r.header, 5)}  {_hex(r.fragment, 8)} …")
            note = notes.get((r.direction, r.offset))
            lines.append(f"   application_data {r.length} B" + (f" → {note}" if note else ""))
        if len(records) > len(shown):
            lines.append(f"  … {len(records) - len(shown)} more application_data records")
        return lines or ["no application_data records captured"]
    for flow in obs.flows:
        if flow.proto != "tcp":
            continue
        for direction, arrow in (("c2s", "↑"), ("s2c", "↓")):
            data = obs.stream(flow, direction)
            for line in data.split(b"\r\n")[:7 if direction == "c2s" else 3]:
                if line:
                    lines.append(f"{arrow} {line.decode('latin-1')}")
    return lines or ["no TCP payload captured"]


def leak_lines(result) -> list[str]:
    """The right panel: the metadata an observer reads without any key."""
    obs = result.observation
    lines = []
    for flow in obs.flows:
        lines.append(f"flow  {flow.client}:{flow.client_port} → {flow.server}:{flow.server_port} {flow.proto}")
    for d in obs.dns:
        if d.response:
            lines.append(f"DNS   {d.qtype} {d.name} → {', '.join(d.answers) or 'no answer'}")
        else:
            lines.append(f"DNS   query {d.qtype} {d.name} from {d.src}")
    for t in obs.tls:
        ch, sh = t.client_hello, t.server_hello
        if ch:
            lines.append(f"SNI   {ch.sni or '(none)'}")
            lines.append(f"ALPN  {', '.join(ch.alpn) or '(none)'}")
            lines.append(f"offer {', '.join(map(version_name, ch.supported_versions)) or version_name(ch.legacy_version)}")
        if sh:
            lines.append(f"chose {version_name(sh.version)}, {sh.cipher_name}")
        for cert in t.certificates[:1]:
            lines.append(f"cert  {cert.subject}")
            lines.append(f"      issuer {cert.issuer}")
        up = [r.length for r in t.records if r.direction == "c2s" and r.content_type == 23]
        down = [r.length for r in t.records if r.direction == "s2c" and r.content_type == 23]
        lines.append(f"sizes ↑ {' '.join(map(str, up[:6]))}{' …' if len(up) > 6 else ''}")
        lines.append(f"      ↓ {' '.join(map(str, down[:6]))}{' …' if len(down) > 6 else ''}")
        if t.records:
            hello = t.records[0].time
            app = [r.time for r in t.records if r.content_type == 23 and r.direction == "c2s"]
            if app:
                lines.append(f"time  first app data {1000 * (app[-1] - hello):.1f} ms after ClientHello")
    if not obs.tls:
        for flow in obs.flows:
            if flow.proto == "tcp":
                lines.append(f"sizes ↑ {flow.payload_bytes['c2s']} B / ↓ {flow.payload_bytes['s2c']} B")
    return lines


def check_lines(checks) -> list[str]:
    return [f"{'✔' if c.passed else '✘'} {c.name} — {c.evidence}" for c in checks]


def scenario_text(result) -> str:
    lines = [f"{result.name} — {result.title}",
             f"secret this run: {result.secret} (random; searched for in every captured byte)", ""]
    left_title = "on the wire (ciphertext)" if result.observation.tls else "on the wire (clear text)"
    lines.append(panels(left_title, wire_lines(result), "what still leaks", leak_lines(result)))
    if result.decrypted is not None:
        request = result.decrypted["c2s"].decode("latin-1")
        lines += ["", "decrypted with the lab's key log (an observer on the wire has none); "
                      "what the records marked → carried:"]
        for line in request.split("\r\n"):
            if line:
                lines.append(f"  ↑ {_fit(line, 96)}")
        status = result.decrypted["s2c"].split(b"\r\n", 1)[0].decode("latin-1")
        if status:
            lines.append(f"  ↓ {status}")
    lines += [""] + check_lines(result.checks)
    verdict = "all checks passed" if result.passed else "SOME CHECKS FAILED"
    lines.append(f"verdict: {verdict} ({result.seconds:.2f} s)")
    return "\n".join(lines)


def summary_text(results) -> str:
    rows = [(r.name, f"{sum(c.passed for c in r.checks)}/{len(r.checks)}", "pass" if r.passed else "FAIL",
             f"{r.seconds:.2f} s", r.title) for r in results]
    return table(("SCENARIO", "CHECKS", "VERDICT", "TIME", "WHAT IT SHOWS"), rows)


def scenarios_text(modules) -> str:
    rows = [(m.NAME, m.SUMMARY) for m in modules]
    return table(("SCENARIO", "WHAT IT SHOWS"), rows) + "\n\nrun one with `labctl run NAME`, all with `labctl run all`"


def observation_text(name: str, obs) -> str:
    """`labctl analyze FILE`: what a passive observer learns from one capture."""
    from types import SimpleNamespace

    lines = [f"{name}: {obs.frames} packets, {obs.wire_bytes} bytes, {obs.duration:.3f} s",
             f"{len(obs.flows)} flow(s), {len(obs.dns)} DNS message(s), {len(obs.tls)} TLS connection(s)", ""]
    view = SimpleNamespace(observation=obs)
    lines += leak_lines(view)
    if obs.tls:
        lines += [""] + wire_lines(view)
    else:
        lines += ["", "no TLS in this capture: nothing in it was encrypted by TLS"]
    return "\n".join(lines)


def verify_text(result) -> str:
    """The verification matrix: one row per case and client, expected beside actual."""
    rows = []
    for r in result.cases:
        for o in r.outcomes:
            actual = o.actual
            rows.append((r.case.name if o.client == "safe" else "", o.client, o.expected.outcome, actual,
                         _fit(o.error or "-", 44), "✔" if o.passed else "✘"))
    lines = [f"{result.name} — {result.title}", "",
             table(("CASE", "CLIENT", "EXPECTED", "ACTUAL", "ERROR", ""), rows), "",
             "what the wire saw (the safe client's connection):"]
    for r in result.cases:
        lines.append(f"  {r.case.name:<17} {'; '.join(r.wire)}")
    failed = [(r.case.name, o) for r in result.cases for o in r.outcomes if not o.passed]
    if failed:
        lines += ["", "not as declared:"] + [f"  {name} ({o.client}): {o.why}" for name, o in failed]
    note = result.external_note() if hasattr(result, "external_note") else ""
    if note:
        lines += ["", note]
    lines += [""] + check_lines(result.checks)
    lines.append(f"verdict: {'all checks passed' if result.passed else 'SOME CHECKS FAILED'} ({result.seconds:.2f} s)")
    return "\n".join(lines)


def attack_text(result) -> str:
    """An attack: the two sides in panels, notes, and the checks."""
    lines = [f"{result.name} — {result.title}", ""]
    (lt, left), (rt, right) = result.left, result.right
    lines.append(panels(lt, left, rt, right))
    if result.notes:
        lines += [""] + result.notes
    lines += [""] + check_lines(result.checks)
    lines.append(f"verdict: {'all checks passed' if result.passed else 'SOME CHECKS FAILED'} ({result.seconds:.2f} s)")
    return "\n".join(lines)
