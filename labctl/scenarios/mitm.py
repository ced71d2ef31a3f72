"""mitm: the wire intercepts TLS with its own CA: the safe client refuses, the careless one hands over its secret.

The wire turns attacker, on the path between client and server.

What it demonstrates: iptables on the wire hands the client's TLS connection
to an intercepting proxy that presents a certificate for server.lab.test
from the attacker's own CA and relays to the real server. The safe client
checks the certificate, refuses, and the attacker obtains nothing but a
failed handshake. The careless client (verification off) connects as if
nothing were wrong, and the attacker's log holds its request, secret and all.
Encryption without authentication protects you from nobody in the middle.

What to look for in the capture: two connections to server.lab.test:443
that the wire answers itself (the capture records both directions on the
wire here), a ClientHello with SNI server.lab.test in each, and for the safe
client an alert and a close right after the server's certificate.
"""

from __future__ import annotations

import time

from .. import attack, render, runner
from ..lab import Lab
from ..verdict import Check
from . import Options

NAME = "mitm"
TITLE = "On-path interception: the attacker's certificate versus the client's checks"
CHECKS = ("capture complete", "safe client refused the attacker's certificate", "attacker got nothing from the safe client",
          "careless client connected through the attacker", "attacker's log holds the careless client's secret")


def run(lab: Lab, options: Options = Options()) -> attack.AttackResult:
    started = time.monotonic()
    safe_secret, careless_secret = runner.new_secret(), runner.new_secret()
    runs = [[runner.SERVER_NAME, "--secret", safe_secret],
            [runner.SERVER_NAME, "--secret", careless_secret, "--insecure"]]
    b = runner.batch(lab, NAME, runs, attacker=True)
    safe, careless = b.reports
    events = b.attacker_log
    checks = [
        runner.check_capture(b.stats),
        Check("safe client refused the attacker's certificate",
              not safe["ok"] and safe.get("error_kind") == "certificate",
              f"{safe.get('error_kind')}: {safe.get('error')}" if not safe["ok"] else "it connected!"),
        Check("attacker got nothing from the safe client", not attack.obtained(events, safe_secret),
              f"{render.counted(len(events), 'attacker log entry', 'attacker log entries')} searched for the safe client's secret"),
        Check("careless client connected through the attacker", bool(careless["ok"]),
              careless.get("status") or careless.get("error", "")),
        Check("attacker's log holds the careless client's secret",
              bool(attack.obtained(events, careless_secret)),
              f"in {render.counted(len(attack.obtained(events, careless_secret)), 'log entry', 'log entries')}"),
    ]
    return attack.AttackResult(
        NAME, TITLE, checks, b.stats, b.observation, b.pcap, seconds=time.monotonic() - started, lanes=b.lanes,
        left=("safe client (checks the certificate)", attack.outcome_lines(safe, events, safe_secret)),
        right=("careless client (--insecure)", attack.outcome_lines(careless, events, careless_secret)),
        secrets=[safe_secret, careless_secret], revealed=[careless_secret] if attack.obtained(events, careless_secret)
        else [],
        data={"safe_client": safe, "careless_client": careless, "attacker_log": events})
