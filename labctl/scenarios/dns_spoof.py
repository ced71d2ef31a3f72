"""dns-spoof: the wire forges the DNS answer: the safe client refuses the attacker's certificate, the careless one leaks.

The resolver's answer is forged, and the client goes to the attacker.

What it demonstrates: the wire answers the client's DNS query for
server.lab.test itself, with its own address, as if it were the resolver
(DNS has no authentication on the wire). Both clients connect to the
attacker. The safe client checks the certificate it is shown, which is not
signed by a CA it trusts, and refuses; the careless client hands over its
secret. TLS's certificate check is what stands between a spoofed DNS answer
and your password.

What to look for in the capture: a DNS answer for server.lab.test pointing
at the wire's address (not the server's), then TLS connections to the wire.
"""

from __future__ import annotations

import time

from .. import attack, render, runner
from ..lab import Lab
from ..verdict import Check
from . import Options

NAME = "dns-spoof"
TITLE = "DNS spoofing: a forged answer sends the client to the attacker"
CHECKS = ("capture complete", "spoofed answer on the wire", "clients resolved to the attacker",
          "safe client refused", "attacker got nothing from the safe client",
          "attacker's log holds the careless client's secret")


def run(lab: Lab, options: Options = Options()) -> attack.AttackResult:
    started = time.monotonic()
    attacker_ip = lab.address("wire")
    safe_secret, careless_secret = runner.new_secret(), runner.new_secret()
    runs = [[runner.SERVER_NAME, "--secret", safe_secret],
            [runner.SERVER_NAME, "--secret", careless_secret, "--insecure"]]
    b = runner.batch(lab, NAME, runs, attacker=True, spoof_dns=f"{runner.SERVER_NAME}={attacker_ip}")
    safe, careless = b.reports
    events = b.attacker_log
    answers = [d for d in b.observation.dns if d.response and d.name == runner.SERVER_NAME]
    spoofed = [d for d in answers if attacker_ip in d.answers]
    checks = [
        runner.check_capture(b.stats),
        Check("spoofed answer on the wire", bool(spoofed) and len(spoofed) == len(answers),
              f"{len(spoofed)} of {len(answers)} answers for {runner.SERVER_NAME} say {attacker_ip} "
              f"(the server is {lab.address('server')}), sent as from {spoofed[0].src if spoofed else '-'}"),
        Check("clients resolved to the attacker", safe.get("address") == careless.get("address") == attacker_ip,
              f"safe → {safe.get('address')}, careless → {careless.get('address')}"),
        Check("safe client refused", not safe["ok"] and safe.get("error_kind") == "certificate",
              f"{safe.get('error_kind')}: {safe.get('error')}" if not safe["ok"] else "it connected!"),
        Check("attacker got nothing from the safe client", not attack.obtained(events, safe_secret),
              f"{render.counted(len(events), 'attacker log entry', 'attacker log entries')} searched"),
        Check("attacker's log holds the careless client's secret",
              bool(attack.obtained(events, careless_secret)),
              f"in {render.counted(len(attack.obtained(events, careless_secret)), 'log entry', 'log entries')}"),
    ]
    notes = [f"DNS  {d.name} → {', '.join(d.answers)} (from {d.src} to {d.dst})" for d in answers]
    return attack.AttackResult(
        NAME, TITLE, checks, b.stats, b.observation, b.pcap, seconds=time.monotonic() - started, lanes=b.lanes,
        left=("safe client (checks the certificate)", attack.outcome_lines(safe, events, safe_secret)),
        right=("careless client (--insecure)", attack.outcome_lines(careless, events, careless_secret)),
        secrets=[safe_secret, careless_secret], revealed=[careless_secret] if attack.obtained(events, careless_secret)
        else [],
        notes=notes, data={"safe_client": safe, "careless_client": careless, "attacker_log": events,
                           "dns_answers": [d.to_dict() for d in answers]})
