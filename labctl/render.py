"""Pure rendering for the terminal: functions that turn results into text. Only cli.py prints.

The building blocks of the terminal views: tables, dotted lines, two panels
side by side, the wire's bytes and what leaks. Each result type's `text()`
(labctl.verdict.Result) builds its view from them, beside the result
(labctl.exchange, labctl.attack, a scenario of its own shape). Nothing here
names a scenario or knows a result type.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
from typing import TYPE_CHECKING, Sequence

from .capture import CaptureStats
from .bringup import UpReport
from .lab import DEFAULT_PROJECT, ServiceState
from .tls.analyzer import C2S, PREVIEW, S2C, Certificate, Observation, TlsConnection, endpoint
from .tls.constants import APPLICATION_DATA, explicit_nonce_length, group_name, is_tls13, version_name
from .verdict import Check, Result

if TYPE_CHECKING:
    from pathlib import Path

    from .certs import CertFile
    from .tls.decrypt import Decryption, KeyLog


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


def certs_text(verb: str, certs_dir: Path, files: Sequence[CertFile], tightened: Sequence[str] = ()) -> str:
    """`labctl certs`: each file, who gets it, and what it is with its mode as read from disk
    (CertFile.describe), never a constant."""
    rows = [(str(f.path.relative_to(certs_dir)), f.mounted_in, f.describe()) for f in files]
    lines = [f"certificates {verb} in {certs_dir}"]
    if tightened:
        lines.append(f"made owner-only: {', '.join(tightened)}")
    return "\n".join(lines) + "\n" + table(("FILE", "MOUNTED IN", "WHAT"), rows)


RESOLVED_BY = {"dot": "DNS over TLS", "doh": "DNS over HTTPS"}


def client_text(report: dict) -> str:
    """client.py's report (one exchange, or with --browse each step) as dotted lines."""
    resolver = report.get("resolver") or {}
    lines = [dotted("resolved by", f"{RESOLVED_BY[resolver['via']]}, {resolver.get('address')}:{resolver.get('port')}")
             ] if resolver.get("via") in RESOLVED_BY else []
    if report.get("browse"):
        return "\n".join(lines + _browse_lines(report))
    if not report.get("ok"):
        lines += [dotted("server address", report["address"])] if report.get("address") else []
        lines.append(dotted("refused", f"{report.get('error_kind')}: {report.get('error')}"))
        return "\n".join(lines)
    lines += [dotted("connected to", f"{report['address']}:{report['port']}")]
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


def _browse_lines(report: dict) -> list[str]:
    """What client.py --browse did: the HSTS store, each request and where the password went."""
    lines = [dotted("HSTS store", ", ".join(report.get("hsts") or []) or "(empty)")]
    for step in report.get("steps", []):
        if step.get("upgraded"):
            lines.append(dotted("HSTS upgrade", f"{step.get('url')} (nothing sent over plain HTTP)"))
            continue
        where = f" → {step['location']}" if step.get("location") else ""
        lines.append(dotted(step.get("method", "?"), f"{step.get('url')}  {step.get('status')}{where}"))
    if report.get("ok"):
        lines.append(dotted("password sent to", str(report.get("secret_sent_to"))))
    else:
        lines.append(dotted("refused", f"{report.get('error_kind')}: {report.get('error')}"))
    return lines


# -- scenarios --------------------------------------------------------------------------

PANEL = 47       # inner width of each panel: two side by side fit in 100 columns
WIDEST = 70      # wider panels fold less, but a line of 70 reads best
NARROWEST = 30   # below this, two panels are stacked rather than squeezed
ARROWS = "↑ = client to server, ↓ = server to client; sizes are TLS record (or TCP payload) lengths in bytes"
SHOWN_RECORDS = 8


def fit(text: str, width: int) -> str:
    """TEXT cut to WIDTH characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[:width - 1] + "…"


def quoted(value: str | bytes) -> str:
    """A value read off the wire, for a sentence: in double quotes, control bytes escaped, never a repr."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    shown = "".join(c if c.isprintable() else {"\r": "\\r", "\n": "\\n", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}")
                    for c in text)
    return f"\"{shown}\""


def counted(n: int, singular: str, plural: str = "") -> str:
    """"1 log entry", "3 log entries": a number and its noun, agreeing."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def listed(items: list[str] | tuple[str, ...], empty: str = "none") -> str:
    """Items as a sentence's list: "a, b" (EMPTY when there are none), never a Python list."""
    return ", ".join(items) or empty


def panel_width() -> int:
    """The inner width of each of two panels side by side in this terminal (COLUMNS): PANEL in 100
    columns, up to WIDEST in a wide one; below NARROWEST the panels are stacked instead (see panels)."""
    return min(WIDEST, (shutil.get_terminal_size((100, 24)).columns - 6) // 2)


def panels(left_title: str, left: list[str], right_title: str, right: list[str], width: int = 0) -> str:
    """Two boxes side by side, like the lab's DESIGN sketch, each WIDTH wide inside (default: what
    panel_width() gives); one above the other where the terminal is too narrow for two. A line too
    long for its box goes on over the next lines, indented at a word (an address is never cut short);
    a title too long for its box is cut."""
    width = width or panel_width()
    if width < NARROWEST:
        wide = max(NARROWEST, min(2 * WIDEST, shutil.get_terminal_size((100, 24)).columns - 2))
        return "\n".join(_box(left_title, left, wide) + _box(right_title, right, wide))
    boxes = _box(left_title, left, width), _box(right_title, right, width)
    rows = max(len(b) for b in boxes)
    padded = [b[:-1] + [f"│{'':<{width}}│"] * (rows - len(b)) + b[-1:] for b in boxes]
    return "\n".join(f"{l} {r}" for l, r in zip(*padded))


def _box(title: str, lines: list[str], width: int) -> list[str]:
    """One box, WIDTH wide inside: its title in the top border, LINES folded to fit."""
    title = fit(title, width - 3)
    top = "┌ " + title + " " + "─" * max(0, width - len(title) - 2) + "┐"
    return [top] + [f"│ {line:<{width - 1}}│" for line in _wrapped(lines, width - 1)] + ["└" + "─" * width + "┘"]


def _wrapped(lines: list[str], width: int) -> list[str]:
    """LINES folded to WIDTH at spaces (a word longer than a line is split), continuations indented."""
    out: list[str] = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * min(len(line) - len(line.lstrip(" ")) + 2, width // 2)
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [line[:width]]
    return [fit(line.rstrip(), width) for line in out]


def _hex(data: bytes, n: int) -> str:
    return " ".join(f"{b:02x}" for b in data[:n])


def wire_lines(obs: Observation, notes: dict[tuple[str, int], str] | None = None) -> list[str]:
    """The left panel: real captured bytes (the application_data records in capture order, or the clear request).

    In TLS 1.2 each record's fragment may open with an explicit nonce or IV
    sent in clear (tls.constants.explicit_nonce_length): the bytes shown as
    ciphertext are the ones after it. Under a NULL cipher nothing is encrypted:
    such records are marked so, with the content they carried.
    """
    notes = notes or {}
    lines: list[str] = []
    if obs.tls:
        records = sorted(((t, r) for t in obs.tls for r in t.records if r.content_type == APPLICATION_DATA),
                         key=lambda tr: (tr[1].frame, tr[1].time))
        skip = {id(t): explicit_nonce_length(t.server_hello.version, t.server_hello.cipher_suite)
                for t in obs.tls if t.server_hello is not None}
        clear = {id(r): data for t in obs.tls if t.null_cipher_mac is not None
                 for r, data in zip(t.records, t.readable_records()) if data is not None}
        for n in sorted({n for n in skip.values() if n}):
            article = "an" if n in (8, 11, 18) else "a"
            lines.append(f"(TLS 1.2: each record opens with {article} {n}-byte explicit nonce or IV, sent in clear; "
                         "the bytes after it are shown)")
        for t in obs.tls:
            if t.null_cipher_mac is not None and t.server_hello is not None:
                lines.append(f"({t.server_hello.cipher_name} is a NULL cipher: application_data crosses in clear, "
                             f"followed by a {t.null_cipher_mac}-byte MAC)")
        for t, r in records[:SHOWN_RECORDS]:
            arrow = "↑" if r.direction == C2S else "↓"
            lines.append(f"{arrow} {_hex(r.header, 5)}  {_hex(r.fragment[skip.get(id(t), 0):], 8)} …")
            note = notes.get((r.direction, r.offset))
            if id(r) in clear:
                note = f"not encrypted (NULL cipher): {fit(quoted(clear[id(r)]), 60)}"
            lines.append(f"   application_data {r.length} B" + (f" → {note}" if note else ""))
        if len(records) > SHOWN_RECORDS:
            lines.append(f"  … {len(records) - SHOWN_RECORDS} more application_data records")
        return lines or ["no application_data records captured"]
    for flow in obs.flows:
        if flow.proto != "tcp":
            continue
        for direction, arrow in ((C2S, "↑"), (S2C, "↓")):
            data = obs.stream(flow, direction)
            for line in data.split(b"\r\n")[:7 if direction == C2S else 3]:
                if line:
                    lines.append(f"{arrow} {line.decode('latin-1')}")
    return lines or ["no TCP payload captured"]


def _certificate_lines(certs: list[Certificate], whose: str) -> list[str]:
    """The first certificate of a chain (its subject and issuer, or why it could not be read), and how many more."""
    lines = []
    for cert in certs[:1]:
        if not cert.readable:
            lines.append(f"cert  {whose}unreadable as X.509: {cert.length} B, SHA-256 {cert.sha256[:16]}…")
        else:
            lines.append(f"cert  {whose}{cert.subject or '(no subject)'}")
            lines.append(f"      issuer {cert.issuer or '(none)'}")
        if cert.refused and cert.readable:
            lines.append("      (cryptography refused it; read by a walk of its DER)")
    if len(certs) > 1:
        lines.append(f"      + {counted(len(certs) - 1, 'more certificate')} in the chain")
    return lines


def _tls_lines(t: TlsConnection) -> list[str]:
    """What the handshake of one connection shows: hellos, a HelloRetryRequest, certificates, renegotiation."""
    ch, sh, hrr = t.client_hello, t.server_hello, t.hello_retry_request
    lines = []
    if ch:
        lines.append(f"SNI   {ch.sni or '(none)'}")
        lines.append(f"ALPN  {listed(ch.alpn, '(none)')}")
        lines.append(f"offer {listed([version_name(v) for v in ch.supported_versions])}" if ch.supported_versions
                     else f"offer up to {version_name(ch.legacy_version)} (ClientHello.legacy_version)")
    if hrr:
        first = t.first_client_hello
        asked = f"a key share in {group_name(hrr.group)}" if hrr.group is not None else "another ClientHello"
        offered = f" (the first ClientHello sent {listed(first.key_share_groups)})" if first else ""
        lines.append(f"retry HelloRetryRequest: the server asked for {asked}{offered}"
                     + ("; a second ClientHello followed" if first else ""))
    if sh:
        share = f", key share {group_name(sh.group)}" if sh.group is not None else ""
        lines.append(f"chose {version_name(sh.version)}, {sh.cipher_name}{share}")
        if t.null_cipher_mac is not None:
            lines.append(f"clear NULL cipher: application_data is not encrypted, only MAC'd "
                         f"({t.null_cipher_mac}-byte MAC)")
    if t.certificates_encrypted:
        lines.append(f"cert  encrypted ({version_name(sh.version) if sh else 'TLS 1.3'} sends it after ServerHello)")
    elif sh is not None and sh.psk and t.version is not None and is_tls13(t.version):
        lines.append("cert  none sent: resumed with a pre-shared key (a ticket from an earlier connection)")
    lines += _certificate_lines(t.certificates, "")
    if t.client_certificates:
        lines += _certificate_lines(t.client_certificates, "the client's: ")
    elif t.client_certificates is not None:
        lines.append("cert  the client's: none (its Certificate message was empty)")
    elif t.certificate_requested:
        lines.append("cert  the client's: asked for (CertificateRequest), none sent in clear")
    for alert in [a for a in t.alerts if not a.encrypted][:3]:
        lines.append(f"alert {'↑' if alert.direction == C2S else '↓'} {alert.level} {alert.description} (in clear)")
    sealed = [a for a in t.alerts if a.encrypted]
    if sealed:
        lines.append(f"alert {counted(len(sealed), 'alert')} encrypted "
                     f"(↑ {sum(a.direction == C2S for a in sealed)} / ↓ {sum(a.direction == S2C for a in sealed)})")
    renegotiation = t.renegotiation()
    if renegotiation:
        arrow = "↑" if renegotiation.direction == C2S else "↓"
        records = renegotiation.handshake_records
        how = "encrypted" if t.null_cipher_mac is None else "under the NULL cipher"
        lines.append(f"reneg a second handshake, {how}, began {arrow} in frame {renegotiation.frame}: "
                     f"↑ {records[C2S]} / ↓ {records[S2C]} handshake records"
                     + ("; keys changed again both ways" if renegotiation.completed else ""))
    return lines


RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN (no such name)", 4: "NOTIMP", 5: "REFUSED"}


def leak_lines(obs: Observation) -> list[str]:
    """The right panel: the metadata an observer reads without any key."""
    lines = []
    for flow in obs.flows:
        cut = (f" ({counted(flow.truncated[C2S] + flow.truncated[S2C], 'frame')} cut short by the capture: "
               f"↑ {flow.truncated[C2S]} ↓ {flow.truncated[S2C]})" if flow.truncated[C2S] + flow.truncated[S2C] else "")
        lines.append(f"flow  {flow.label}{cut}")
    for d in obs.dns:
        if d.response:
            # RFC 1035 4.1.1 (and 6895): a response that is not NOERROR says why, not "no answer".
            why = RCODES.get(d.rcode, f"rcode {d.rcode}") if d.rcode else "no answer"
            lines.append(f"DNS   {d.qtype} {d.name} → {listed(d.answers, why)}")
        else:
            lines.append(f"DNS   query {d.qtype} {d.name} from {d.src}")
    for t in obs.tls:
        lines.append(f"TLS   {endpoint(t.flow.client, t.flow.client_port)} → "
                     f"{endpoint(t.flow.server, t.flow.server_port)}")
        lines += _tls_lines(t)
        up = [r.length for r in t.records if r.direction == C2S and r.content_type == APPLICATION_DATA]
        down = [r.length for r in t.records if r.direction == S2C and r.content_type == APPLICATION_DATA]
        lines.append(f"sizes ↑ {' '.join(map(str, up[:6])) or '(no application_data)'}{' …' if len(up) > 6 else ''}")
        lines.append(f"      ↓ {' '.join(map(str, down[:6])) or '(no application_data)'}{' …' if len(down) > 6 else ''}")
        if t.records and t.client_hello is not None:       # a capture begun mid-connection has none
            hello = t.records[0].time
            app = [r.time for r in t.records if r.content_type == APPLICATION_DATA and r.direction == C2S]
            if app:
                lines.append(f"time  first ↑ application_data {1000 * (app[0] - hello):.1f} ms after ClientHello")
    if not obs.tls:
        for flow in obs.flows:
            if flow.proto == "tcp":
                lines.append(f"sizes ↑ {flow.payload_bytes[C2S]} B / ↓ {flow.payload_bytes[S2C]} B")
    return lines


def check_lines(checks: list[Check]) -> list[str]:
    return [f"{'✔' if c.passed else '✘'} {c.name} — {c.evidence}" for c in checks]


def summary_text(results: list[Result]) -> str:
    """`run all`: one row per scenario, then the overall verdict."""
    rows = [(r.name, f"{sum(c.passed for c in r.checks)}/{len(r.checks)}", "pass" if r.passed else "FAIL",
             f"{r.seconds:.2f} s", r.title) for r in results]
    passed = sum(r.passed for r in results)
    seconds = sum(r.seconds for r in results)
    verdict = (f"verdict: all {len(results)} scenarios passed ({seconds:.1f} s)" if passed == len(results) else
               f"verdict: SOME SCENARIOS FAILED — {passed} of {len(results)} passed "
               f"(failed: {', '.join(r.name for r in results if not r.passed)})")
    return table(("SCENARIO", "CHECKS", "VERDICT", "TIME", "WHAT IT SHOWS"), rows) + "\n\n" + verdict


def scenarios_text(scenarios: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """`labctl scenarios`: each scenario (name, summary, checks), what it shows, and the checks it makes."""
    lines = []
    for name, summary, checks in scenarios:
        lines += [f"{name} — {summary}", "  checks:"] + [f"    - {check}" for check in checks] + [""]
    return "\n".join(lines) + "run one with `labctl run NAME`, all with `labctl run all`"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def capture_lines(obs: Observation) -> list[str]:
    """What the capture did not hold or the analyzer did not dissect, said, never filled in: TLS after a
    clear preamble, a direction not captured, holes in a TCP stream, records cut short, records found again
    after a hole, and flows of TLS's family that are not dissected (QUIC, DTLS, SSLv2)."""
    arrows = {C2S: "↑", S2C: "↓"}
    lines = []
    for t in obs.tls:
        if t.preamble:
            sizes = ", ".join(f"{n} B {arrows[d]}" for d, n in t.preamble.sizes.items())
            lines.append(f"clear {t.preamble.name} before TLS ({sizes}) on {t.flow.label}")
        if t.missing_direction:
            side = "client → server" if t.missing_direction == C2S else "server → client"
            lines.append(f"half  {t.flow.label}: {side} not captured (no byte of it is in the capture); "
                         f"TLS read from the other side")
        cut = [r for r in t.records if r.missing]
        for r in cut[:3]:
            lines.append(f"cut   {arrows[r.direction]} {t.flow.label}: {r.type_name} record of {r.length} B at stream "
                         f"offset {r.offset}: {r.length - r.missing} B of it read, the rest not (a hole or the "
                         "capture's end)")
        if len(cut) > 3:
            lines.append(f"      … {len(cut) - 3} more records cut short")
        for r in [r for r in t.records if r.after_gap][:3]:
            lines.append(f"lost  {arrows[r.direction]} {t.flow.label}: records resume at stream offset {r.offset} "
                         f"(frame {r.frame}) after {r.after_gap} B that could not be read as records")
    for flow in obs.flows:
        for direction in (C2S, S2C):
            holes = flow.holes[direction]
            if not holes:
                continue
            first = holes[0]
            where = f"before frame {first.frame}" if first.frame else "at the end of the capture"
            lines.append(f"gap   {arrows[direction]} {flow.label}: {_plural(len(holes), 'hole', 'holes')}, "
                         f"{sum(h.size for h in holes)} B not captured (first: {first.size} B at stream offset "
                         f"{first.offset}, {where})")
    for u in obs.undissected:
        n = len(u.flows)
        versions = ", ".join(u.versions)
        if u.protocol == "SSLv2":
            lines.append(f"{_plural(n, 'TCP flow opens', 'TCP flows open')} with an SSLv2-format ClientHello "
                         f"({versions}); not dissected")
        else:
            lines.append(f"{_plural(n, u.transport.upper() + ' flow looks', u.transport.upper() + ' flows look')} "
                         f"like {u.protocol} ({versions}); not dissected")
        lines += [f"      {f.label}" for f in u.flows]
    return lines


def observation_text(name: str, obs: Observation) -> str:
    """`labctl analyze FILE`: what a passive observer learns from one capture."""
    lines = [f"{name}: {obs.frames} packets, {obs.wire_bytes} bytes, {obs.duration:.3f} s",
             f"{len(obs.flows)} flow(s), {len(obs.dns)} DNS message(s), {len(obs.tls)} TLS connection(s)"]
    if obs.truncated:
        lines.append(f"{counted(obs.truncated, 'frame')} cut short by the capture (snaplen): the bytes it did not "
                     "keep are holes, never filled in")
    lines += [f"{counted(n, 'packet')} {what}: not dissected" for what, n in obs.not_dissected.items()]
    if not obs.kept:
        lines.append(f"a big capture, read in bounded memory: the first {PREVIEW} bytes of each application_data "
                     "record are kept (give --keylog to keep and decrypt them all)")
    if not obs.frames:
        return "\n".join(lines + ["", "a valid capture that holds no packets"])
    lines += [""] + leak_lines(obs)
    notes = capture_lines(obs)
    if notes:
        lines += [""] + notes
    if obs.tls:
        lines += [""] + wire_lines(obs) + [ARROWS]
    elif obs.undissected:
        lines += ["", "no TLS connection dissected here, but the flows named above carry TLS's kin "
                      "(not dissected): their contents stay unknown to this tool"]
    elif obs.not_dissected:
        lines += ["", "no TLS in what was dissected; the packets not dissected were not looked at"]
    else:
        lines += ["", "no TLS in this capture: nothing in it was encrypted by TLS"]
    return "\n".join(lines)


# -- `analyze --keylog`: the decrypted application data ---------------------------------------

SHOWN_LINES = 8           # lines of decrypted text shown per direction
SHOWN_WIDTH = 100         # characters of each
SHOWN_HEX_ROWS = 4        # rows of 16 bytes when the data is not text
SHOWN_SKIPPED = 10        # key log lines listed as skipped


def _looks_like_text(data: bytes) -> bool:
    """Mostly printable ASCII (with tabs and line ends) in its first 512 bytes: shown as lines, else as hex."""
    head = data[:512]
    printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.9 * len(head)


def _escaped(line: bytes) -> str:
    """One line of decrypted bytes for the terminal: control and non-ASCII bytes escaped (\\r, \\x00)."""
    return "".join(chr(b) if 32 <= b < 127 else {9: "\\t", 10: "\\n", 13: "\\r"}.get(b, f"\\x{b:02x}")
                   for b in line)


def shown_data(data: bytes, indent: str = "    ") -> list[str]:
    """A bounded view of DATA: its first SHOWN_LINES lines as text (each cut to SHOWN_WIDTH), or, for
    binary data, its first SHOWN_HEX_ROWS rows of 16 bytes in hex and ASCII; then what was left out."""
    if _looks_like_text(data):
        lines = data.splitlines(keepends=True)
        out = [indent + fit(_escaped(line), SHOWN_WIDTH) for line in lines[:SHOWN_LINES]]
        rest = sum(len(line) for line in lines[SHOWN_LINES:])
        if rest:
            out.append(f"{indent}… {counted(len(lines) - SHOWN_LINES, 'more line')}, {rest} more bytes "
                       "(--json has every byte)")
        return out
    rows = [data[i:i + 16] for i in range(0, min(len(data), 16 * SHOWN_HEX_ROWS), 16)]
    out = [f"{indent}{16 * n:04x}  {' '.join(f'{b:02x}' for b in row):<47}  "
           f"{''.join(chr(b) if 32 <= b < 127 else '.' for b in row)}" for n, row in enumerate(rows)]
    if len(data) > 16 * SHOWN_HEX_ROWS:
        out.append(f"{indent}… {len(data) - 16 * SHOWN_HEX_ROWS} more bytes (--json has every byte)")
    return out


def keylog_lines(names: list[str], keylog: KeyLog) -> list[str]:
    """What was read of the key log(s) NAMES: entries used, and each line skipped with why."""
    skipped = keylog.skipped
    head = f"key log {listed(names)}: {counted(keylog.entries, 'entry', 'entries')} read"
    if not skipped:
        return [head + ", no line skipped"]
    lines = [head + f", {counted(len({(s.source, s.line) for s in skipped}), 'line')} skipped "
                    "(as Wireshark skips what it cannot use):"]
    for s in skipped[:SHOWN_SKIPPED]:
        where = f"line {s.line}" if len(names) < 2 else f"{s.source} line {s.line}"
        lines.append(f"  {where}: {s.reason} — {quoted(s.text)}")
    if len(skipped) > SHOWN_SKIPPED:
        lines.append(f"  … {len(skipped) - SHOWN_SKIPPED} more (--json lists them all)")
    return lines


def decryption_lines(connection: TlsConnection, result: Decryption) -> list[str]:
    """One connection's decrypted application data per direction, bounded, with what could not be decrypted."""
    sh = connection.server_hello
    negotiated = f" — {version_name(sh.version)} {sh.cipher_name}" if sh is not None else ""
    lines = [f"TLS {connection.flow.label}{negotiated}"]
    if result.error is not None:
        return lines + [f"  not decrypted: {result.error}"]
    if result.handshakes > 1:
        lines.append(f"  keys of {result.handshakes} handshakes used (renegotiated: the later hellos "
                     "travelled encrypted)")
    for direction, arrow, who in ((C2S, "↑", "client → server"), (S2C, "↓", "server → client")):
        data = result.application_data(direction)
        records = result.application_records(direction)
        lines.append(f"  {arrow} {who}: {counted(len(data), 'byte')} of application data in "
                     f"{counted(records, 'record')}")
        if data:
            lines += shown_data(data)
        for lost in (x for x in result.lost if x.direction == direction):
            lines.append(f"    {counted(lost.records, 'record')} lost before record {lost.index} (not in the "
                         f"capture: the sequence number jumped by {lost.records})")
        for d, reason, indexes in result.not_decrypted():
            if d == direction:
                which = ", ".join(map(str, indexes[:5])) + (" …" if len(indexes) > 5 else "")
                lines.append(f"    {counted(len(indexes), 'record')} not decrypted ({which}): {reason}")
    return lines


def decryption_text(names: list[str], keylog: KeyLog, connections: list[TlsConnection],
                    results: list[Decryption]) -> str:
    """`labctl analyze FILE --keylog KEYS`: the key log as read, then each TLS connection decrypted."""
    lines = keylog_lines(names, keylog) + [""]
    if not connections:
        return "\n".join(lines + ["no TLS connection to decrypt"])
    decrypted = sum(1 for r in results if r.error is None)
    lines.append(f"decrypted with the key log: {decrypted} of {counted(len(connections), 'TLS connection')}")
    for connection, result in zip(connections, results):
        lines += decryption_lines(connection, result)
    return "\n".join(lines)
