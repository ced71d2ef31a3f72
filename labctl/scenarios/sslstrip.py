"""sslstrip: a bare name starts in clear; the wire strips the redirect to HTTPS and reads the password, unless HSTS.

The first request a person makes is plain HTTP, and the attacker answers it.

What it demonstrates: a person types www-local.lab.test (no scheme), so the browser
asks over plain HTTP; the site (nginx, services/proxy) answers with a
redirect to https:// and serves its login page only over TLS. The wire,
on the path, takes that first plain request (iptables REDIRECT of port 80):
it follows the redirect itself, speaks HTTPS to the site, and answers the
client in plain HTTP with every https:// link turned into http:// and the
Strict-Transport-Security header dropped. The login form now posts the
password in clear, to the attacker, who passes it on over TLS: the site saw
only HTTPS, the client saw no certificate error, and the password crossed
the wire in clear. The same client with HSTS (RFC 6797) remembered from an
earlier visit's Strict-Transport-Security header (or a preload list) turns
http:// into https:// before sending a byte, and the attacker gets nothing.

What to look for in the capture: the stripped client's GET and POST to
port 80, the password readable in the POST, and the wire's own TLS
connections to the proxy's port 443; the HSTS client's connections all go
to port 443.
"""

from __future__ import annotations

import time

from .. import attack, render, runner
from ..certs import PROXY_NAMES
from ..lab import Lab
from ..tls.analyzer import C2S, Observation
from ..verdict import Check
from . import Options

NAME = "sslstrip"
TITLE = "sslstrip: the first request in clear, and HSTS"
CHECKS = ("capture complete", "site sends plain HTTP to HTTPS (the attacker followed its redirect)",
          "stripped client posted its password in clear", "attacker's log holds the stripped client's password",
          "HSTS client never used plain HTTP", "attacker got nothing from the HSTS client")
# www-local.lab.test: nginx redirects :80 to https:// and sends HSTS on :443; its application
# listens on the proxy's loopback, so the only clear hop is the one the attacker makes.
SITE = PROXY_NAMES[2]
START = "/login"                        # what the person types after the name


def plain_posts(obs: Observation, client: str, secret: str) -> list[str]:
    """The plain-HTTP (port 80) streams from CLIENT that carry SECRET, as "client:port → server:80"."""
    return [f.label for f in obs.flows if f.proto == "tcp" and f.client == client and f.server_port == 80
            and secret.encode() in obs.stream(f, C2S)]


def step_lines(report: dict) -> list[str]:
    """What one browsing client did, step by step, as its report says."""
    lines = []
    for step in report.get("steps", []):
        if step.get("upgraded"):
            lines.append(f"HSTS: {step['hsts']} is known → {step['url']} (no plain request)")
            continue
        status = str(step.get("status", "")).split(" ", 1)[-1]
        where = f" → {step['location']}" if step.get("location") else ""
        lines.append(f"{step['method']} {step['url']}  {status}{where}")
    if report.get("ok"):
        lines.append(f"password sent to {report.get('secret_sent_to')}")
    else:
        lines.append(f"failed: {report.get('error')}")
    return lines


def run(lab: Lab, options: Options = Options(), hsts: bool = True) -> attack.AttackResult:
    """HSTS=False runs the second client without its earlier visit (the fix switched off: a test
    holds the HSTS checks to failing then)."""
    started = time.monotonic()
    stripped_secret, hsts_secret = runner.new_secret(), runner.new_secret()
    earlier = ["--hsts-from", f"https://{SITE}/"] if hsts else []
    runs = [[SITE, "--browse", "--path", START, "--secret", stripped_secret],
            [SITE, "--browse", "--path", START, "--secret", hsts_secret, *earlier]]
    b = runner.batch(lab, NAME, runs, attacker=True, strip=True)
    stripped, protected = b.reports
    events = b.attacker_log
    obs = b.observation
    client = lab.address("client")
    followed = [e for e in events if e.get("event") == "followed the redirect to https itself"]
    leaked = plain_posts(obs, client, stripped_secret)
    ports = {s.get("local_port") for s in protected.get("steps", []) if s.get("local_port")}
    hsts_flows = [f for f in obs.flows if f.proto == "tcp" and f.client == client and f.client_port in ports]
    plain_steps = [s["url"] for s in protected.get("steps", []) if s.get("method") and s["url"].startswith("http:")]
    upgraded = [s for s in protected.get("steps", []) if s.get("upgraded")]
    hsts_found = attack.obtained(events, hsts_secret) or obs.find(hsts_secret.encode())
    checks = [
        runner.check_capture(b.stats),
        Check(CHECKS[1], bool(followed),
              f"{render.counted(len(followed), 'redirect')} to {followed[0]['location'] if followed else 'https'} "
              "followed by the attacker"),
        Check(CHECKS[2], bool(stripped.get("ok")) and bool(leaked) and
              str(stripped.get("secret_sent_to", "")).startswith("http://"),
              f"the form posted to {stripped.get('secret_sent_to')}; password readable in "
              f"{', '.join(leaked) or 'no plain stream'}"),
        Check(CHECKS[3], bool(attack.obtained(events, stripped_secret)),
              f"in {render.counted(len(attack.obtained(events, stripped_secret)), 'log entry', 'log entries')}"),
        Check(CHECKS[4], bool(protected.get("ok")) and bool(upgraded) and not plain_steps and bool(hsts_flows)
              and all(f.server_port == 443 for f in hsts_flows),
              f"{len(upgraded)} request(s) upgraded by HSTS before sending; its {len(hsts_flows)} connections "
              f"went to port(s) {', '.join(sorted({str(f.server_port) for f in hsts_flows})) or 'none'}"
              + (f"; plain requests: {', '.join(plain_steps)}" if plain_steps else "")),
        Check(CHECKS[5], bool(protected.get("ok")) and not hsts_found,
              f"{render.counted(len(events), 'attacker log entry', 'attacker log entries')} and "
              f"{len(obs.streams)} reassembled streams searched for its password"
              + (f"; found in {len(hsts_found)} place(s)" if hsts_found else "")),
    ]
    notes = ["the attacker's log:"] + [f"  {e['event']}" + (f" ({e['client']})" if e.get("client") else "")
                                       for e in events]
    return attack.AttackResult(
        NAME, TITLE, checks, b.stats, obs, b.pcap, seconds=time.monotonic() - started, lanes=b.lanes,
        left=(f"typed {SITE}{START}, no HSTS", [f"secret   {stripped_secret}", *step_lines(stripped)]),
        right=(f"typed {SITE}{START}, HSTS remembered" if hsts else f"typed {SITE}{START}, HSTS off (test)",
               [f"secret   {hsts_secret}", *step_lines(protected)]),
        secrets=[stripped_secret, hsts_secret],
        revealed=[stripped_secret] if attack.obtained(events, stripped_secret) else [],
        notes=notes, data={"stripped_client": {**stripped, "secret": stripped_secret},
                           "hsts_client": {**protected, "secret": hsts_secret}, "attacker_log": events})
