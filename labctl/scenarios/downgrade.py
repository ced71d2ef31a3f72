"""downgrade: TLS 1.0/1.1 and NULL ciphers are refused with alerts on the wire; compression is never negotiated.

Old versions and weak suites are refused, visibly, and compression is never on.

What it demonstrates: a client (or an attacker posing as one) that offers
only TLS 1.0/1.1 gets a protocol_version alert from the safe server; the
safe client refuses a server stuck at TLS 1.0/1.1; a client offering only a
cipher without encryption (NULL) gets a handshake_failure. The refusals are
alerts in clear on the wire, before any key exists. And no handshake here
negotiates TLS compression: CRIME (2012) recovered cookies by watching how
the compressed, encrypted size changed as it injected guesses, so TLS
compression is off everywhere (and gone in TLS 1.3).

An on-path attacker cannot quietly edit the versions in a ClientHello: the
Finished messages authenticate the whole handshake transcript, and a TLS 1.3
server that falls back marks ServerHello.random (RFC 8446 4.1.3).

What to look for in the capture: four connections; three end with an alert
record in clear; every ClientHello lists compression method 0 (null) only.
"""

from __future__ import annotations

import time

from .. import attack, render, runner
from ..lab import Lab
from ..tls.analyzer import TlsConnection
from ..tls.constants import TLS10, TLS11, TLS13, handshake_name, version_name
from ..verdict import Check
from . import Options

NAME = "downgrade"
TITLE = "Downgrades refused: old versions, weak suites, and no compression"
CHECKS = ("capture complete", "old client refused by the safe server (alert in clear)",
          "legacy server refused by the safe client", "NULL-cipher client refused (alert in clear)",
          "safe client and server negotiate TLS 1.3", "no compression offered or chosen")
OLD = ("--min-version", "1.0", "--max-version", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0")
NULL = ("--max-version", "1.2", "--ciphers", "NULL-SHA256:@SECLEVEL=0")


def alerts(conn: TlsConnection | None, direction: str) -> list[str]:
    """The alerts DIRECTION sent in clear on CONN (their descriptions, RFC 8446 section 6)."""
    return [a.description for a in (conn.alerts if conn else []) if a.direction == direction and not a.encrypted]


def why_refused(conn: TlsConnection | None, report: dict) -> list[str]:
    """Why the safe client refused the legacy server, read off the capture and the client's error.

    The version was not the reason: the safe client's own ClientHello offers
    the legacy server's version (this default context allows TLS 1.0 up). It
    aborts later, after reading what the server sent in clear, because the
    security level refuses what the server used (the error names it).
    """
    if conn is None or conn.client_hello is None or conn.server_hello is None:
        return []
    offered = [version_name(v) for v in conn.client_hello.supported_versions]
    chosen = version_name(conn.server_hello.version)
    sent = [handshake_name(m[0]) for m in conn.handshake_messages("s2c")]
    lines = [f"why the safe client refused the legacy server: it offered {', '.join(offered)} itself, "
             f"so {chosen} was not the reason" if conn.server_hello.version in conn.client_hello.supported_versions
             else f"why the safe client refused the legacy server: {chosen} is not among the versions it offered "
                  f"({', '.join(offered)})"]
    lines.append(f"  it read the server's {', '.join(sent) or 'nothing'} in clear, then sent alert "
                 f"{', '.join(alerts(conn, 'c2s')) or 'none'}; its error: {report.get('error')}")
    if "sigalg" in str(report.get("error", "")):
        lines.append("  OpenSSL refused the server's signature algorithm at its security level "
                     "(a TLS 1.0/1.1 server signs with MD5-SHA1): the security level, not the version, refused it")
    return lines


def run(lab: Lab, options: Options = Options()) -> attack.AttackResult:
    started = time.monotonic()
    runs = [[runner.SERVER_NAME, *OLD],
            ["legacy.lab.test", "--port", "8445"],
            [runner.SERVER_NAME, *NULL],
            [runner.SERVER_NAME]]
    b = runner.batch(lab, NAME, runs)
    old, legacy, null, control = b.reports
    conns = [runner.connection_for(b.observation, r) for r in b.reports]

    legacy_hello = conns[1].server_hello if conns[1] else None
    hellos = [c.client_hello for c in b.observation.tls if c.client_hello]
    chosen = [c.server_hello for c in b.observation.tls if c.server_hello]
    methods = sorted({s.compression_method for s in chosen if s.compression_method is not None})
    checks = [
        runner.check_capture(b.stats),
        Check("old client refused by the safe server (alert in clear)",
              not old["ok"] and "protocol_version" in alerts(conns[0], "s2c"),
              f"client: {old.get('error')}; wire: server alert {render.listed(alerts(conns[0], 's2c'))}"),
        Check("legacy server refused by the safe client",
              not legacy["ok"] and legacy_hello is not None and legacy_hello.version in (TLS10, TLS11),
              f"server chose {version_name(legacy_hello.version) if legacy_hello else '?'}; client: {legacy.get('error')}; "
              f"wire: client alert {render.listed(alerts(conns[1], 'c2s'))}"),
        Check("NULL-cipher client refused (alert in clear)",
              not null["ok"] and "handshake_failure" in alerts(conns[2], "s2c"),
              f"client: {null.get('error')}; wire: server alert {render.listed(alerts(conns[2], 's2c'))}"),
        Check("safe client and server negotiate TLS 1.3",
              control["ok"] and conns[3] is not None and conns[3].version == TLS13,
              version_name(conns[3].version) if conns[3] and conns[3].version else "no handshake"),
        Check("no compression offered or chosen",
              len(hellos) == 4 and all(h.compression_methods == (0,) for h in hellos)
              and all(s.compression_method == 0 for s in chosen),
              f"{len(hellos)} ClientHellos offer only method 0 (null); "
              f"{len(chosen)} ServerHellos chose method "
              f"{', '.join(str(m) for m in methods) or '(none)'}"),
    ]
    rows = [("old client → safe server", old, conns[0]), ("safe client → legacy server", legacy, conns[1]),
            ("NULL-cipher client → server", null, conns[2]), ("safe client → safe server", control, conns[3])]
    left = []
    right = []
    for label, report, conn in rows:
        left.append(label)
        left.append(f"  {'connected, ' + str(report.get('version')) if report['ok'] else 'refused: ' + str(report.get('error'))}")
        right.append(label)
        hello = conn.client_hello if conn else None
        offered = "?" if hello is None else ", ".join(
            version_name(v) for v in hello.supported_versions or (hello.legacy_version,))
        alert = ", ".join(f"{'client' if a.direction == 'c2s' else 'server'} alert {a.description}"
                          for a in (conn.alerts if conn else []) if not a.encrypted) or "no alert in clear"
        right.append(f"  offered {offered}; {alert}")
    return attack.AttackResult(NAME, TITLE, checks, b.stats, b.observation, b.pcap,
                               seconds=time.monotonic() - started, lanes=b.lanes,
                               left=("what the clients got", left), right=("what the wire saw", right),
                               notes=why_refused(conns[1], legacy), data={"reports": b.reports})
