"""tls12: TLS 1.2, where the server's certificate crosses the wire in clear.

What it demonstrates: TLS 1.2 protects the request and the secret just as
well, but its handshake is not encrypted: the server's Certificate message is
readable by anyone on the path, so an observer learns the certificate's
subject, issuer, names and validity (in `tls`, TLS 1.3, they are encrypted).

What to look for in the capture: ServerHello (TLS 1.2), then Certificate with
CN=server.lab.test issued by the lab CA, ServerKeyExchange, and after
ChangeCipherSpec only encrypted records.
"""

from __future__ import annotations

import time

from .. import runner
from ..lab import Lab
from ..tls.constants import TLS12

NAME = "tls12"
KEYLOG = True          # the client writes an NSS key log: `run tls12 --keylog FILE` saves it
TITLE = "TLS 1.2: the certificate is readable on the wire"
SUMMARY = "TLS 1.2: the secret is ciphertext, but the server certificate crosses in clear"
CHECKS = ("capture complete", "client exchange succeeded", "TLS 1.2 negotiated (ServerHello on the wire)",
          "secret not on the wire", "certificate readable in clear", "SNI leaks the name",
          "DNS query leaks the name", "ciphertext on the wire is the request (decrypted with the key log)")


def run(lab: Lab) -> runner.ScenarioResult:
    started = time.monotonic()
    ex = runner.exchange(lab, NAME, ["--max-version", "1.2"])
    obs = ex.observation
    conn = runner.tls_connection(obs, lab)
    decrypted_check, decrypted = runner.check_decryption(conn, ex.keylog, ex.client, ex.secret)
    leaf = conn.certificates[0] if conn and conn.certificates else None
    checks = [
        runner.check_capture(ex.stats),
        runner.check_client(ex.client, "TLSv1.2"),
        runner.check_tls_seen(conn, TLS12),
        runner.check_secret_absent(obs, ex.secret),
        runner.Check("certificate readable in clear",
                     leaf is not None and f"CN={runner.SERVER_NAME}" in leaf.subject
                     and runner.SERVER_NAME in leaf.sans,
                     f"subject {leaf.subject}; issuer {leaf.issuer}" if leaf else "no Certificate message in clear"),
        runner.check_sni_leak(conn, runner.SERVER_NAME),
        runner.check_dns_leak(obs, runner.SERVER_NAME, lab),
        decrypted_check,
    ]
    notes = decrypted.pop("notes") if decrypted else {}
    return runner.finish(runner.ScenarioResult(NAME, TITLE, runner.SERVER_NAME, ex.secret, ex.client, ex.stats,
                                               obs, checks, ex.pcap, ex.keylog, decrypted, notes=notes), started)
