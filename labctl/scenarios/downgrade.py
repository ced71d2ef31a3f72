"""downgrade: old versions and weak suites are refused, visibly, and compression is never on.

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

from .. import attack, runner
from ..lab import Lab
from ..tls.constants import TLS10, TLS11, TLS13, version_name

NAME = "downgrade"
TITLE = "Downgrades refused: old versions, weak suites, and no compression"
SUMMARY = "TLS 1.0/1.1 and NULL ciphers are refused with alerts on the wire; compression is never negotiated"
CHECKS = ("capture complete", "old client refused by the safe server (alert in clear)",
          "legacy server refused by the safe client", "NULL-cipher client refused (alert in clear)",
          "safe client and server negotiate TLS 1.3", "no compression offered or chosen")
OLD = ("--min-version", "1.0", "--max-version", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0")
NULL = ("--max-version", "1.2", "--ciphers", "NULL-SHA256:@SECLEVEL=0")


def run(lab: Lab) -> attack.AttackResult:
    started = time.monotonic()
    runs = [[runner.SERVER_NAME, *OLD],
            ["legacy.lab.test", "--port", "8445"],
            [runner.SERVER_NAME, *NULL],
            [runner.SERVER_NAME]]
    b = runner.batch(lab, NAME, runs)
    old, legacy, null, control = b.reports
    conns = [runner.connection_for(b.observation, r) for r in b.reports]

    def alerts(conn, direction: str) -> list[str]:
        return [a.description for a in (conn.alerts if conn else []) if a.direction == direction and not a.encrypted]

    legacy_hello = conns[1].server_hello if conns[1] else None
    hellos = [c.client_hello for c in b.observation.tls if c.client_hello]
    chosen = [c.server_hello for c in b.observation.tls if c.server_hello]
    checks = [
        runner.check_capture(b.stats),
        runner.Check("old client refused by the safe server (alert in clear)",
                     not old["ok"] and "protocol_version" in alerts(conns[0], "s2c"),
                     f"client: {old.get('error')}; wire: server alert {alerts(conns[0], 's2c') or 'none'}"),
        runner.Check("legacy server refused by the safe client",
                     not legacy["ok"] and legacy_hello is not None and legacy_hello.version in (TLS10, TLS11),
                     f"server offered {version_name(legacy_hello.version) if legacy_hello else '?'}; client: {legacy.get('error')}; "
                     f"wire: client alert {alerts(conns[1], 'c2s') or 'none'}"),
        runner.Check("NULL-cipher client refused (alert in clear)",
                     not null["ok"] and "handshake_failure" in alerts(conns[2], "s2c"),
                     f"client: {null.get('error')}; wire: server alert {alerts(conns[2], 's2c') or 'none'}"),
        runner.Check("safe client and server negotiate TLS 1.3",
                     control["ok"] and conns[3] is not None and conns[3].version == TLS13,
                     f"{version_name(conns[3].version) if conns[3] and conns[3].version else 'no handshake'}"),
        runner.Check("no compression offered or chosen",
                     len(hellos) == 4 and all(h.compression_methods == (0,) for h in hellos)
                     and all(s.compression_method == 0 for s in chosen),
                     f"{len(hellos)} ClientHellos offer only method 0 (null); "
                     f"{len(chosen)} ServerHellos chose {sorted({s.compression_method for s in chosen})}"),
    ]
    rows = [("old client → safe server", old, conns[0]), ("safe client → legacy server", legacy, conns[1]),
            ("NULL-cipher client → server", null, conns[2]), ("safe client → safe server", control, conns[3])]
    left = []
    right = []
    for label, report, conn in rows:
        left.append(label)
        left.append(f"  {'connected, ' + str(report.get('version')) if report['ok'] else 'refused: ' + str(report.get('error'))}")
        right.append(label)
        offered = ", ".join(map(version_name, conn.client_hello.supported_versions)) or "legacy" if conn and conn.client_hello else "?"
        alert = ", ".join(f"{'client' if a.direction == 'c2s' else 'server'} alert {a.description}"
                          for a in (conn.alerts if conn else []) if not a.encrypted) or "no alert in clear"
        right.append(f"  offered {offered}; {alert}")
    return attack.AttackResult(NAME, TITLE, checks, b.stats, b.observation,
                               left=("what the clients got", left), right=("what the wire saw", right),
                               data={"reports": b.reports}, pcap=b.pcap, seconds=time.monotonic() - started)
