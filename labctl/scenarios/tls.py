"""tls: the safe defaults (TLS 1.3), and what still leaks.

What it demonstrates: with `ssl.create_default_context()` on both ends the
request, the secret in it and the response are ciphertext on the wire; the
key log (which only the lab holds) decrypts those same bytes back to the
exact request, secret and all. TLS 1.3 even encrypts the server's
certificate. What is still in clear: both addresses and ports, the DNS query
for the server's name, the SNI and ALPN in the ClientHello, and the size and
timing of every record.

What to look for in the capture: a ClientHello with server_name
server.lab.test, a ServerHello, then only application_data records.
"""

from __future__ import annotations

import time

from .. import runner
from ..lab import Lab
from ..tls.constants import TLS13

NAME = "tls"
KEYLOG = True          # the client writes an NSS key log: `run tls --keylog FILE` saves it
TITLE = "TLS 1.3 with the safe defaults"
SUMMARY = "TLS 1.3: the secret is ciphertext; addresses, DNS, SNI, ALPN, sizes and timing leak"
CHECKS = ("capture complete", "client exchange succeeded", "TLS 1.3 negotiated (ServerHello on the wire)",
          "secret not on the wire", "SNI leaks the name", "DNS query leaks the name",
          "certificate not in clear", "ciphertext on the wire is the request (decrypted with the key log)")


def run(lab: Lab) -> runner.ScenarioResult:
    started = time.monotonic()
    ex = runner.exchange(lab, NAME, [])
    obs = ex.observation
    conn = runner.tls_connection(obs, lab)
    decrypted_check, decrypted = runner.check_decryption(conn, ex.keylog, ex.client, ex.secret)
    certs = conn.certificates if conn else []
    checks = [
        runner.check_capture(ex.stats),
        runner.check_client(ex.client, "TLSv1.3"),
        runner.check_tls_seen(conn, TLS13),
        runner.check_secret_absent(obs, ex.secret),
        runner.check_sni_leak(conn, runner.SERVER_NAME),
        runner.check_dns_leak(obs, runner.SERVER_NAME, lab),
        runner.Check("certificate not in clear", conn is not None and not certs,
                     "TLS 1.3 sends the Certificate encrypted" if conn is not None and not certs else
                     f"{len(certs)} certificate(s) readable"),
        decrypted_check,
    ]
    notes = decrypted.pop("notes") if decrypted else {}
    return runner.finish(runner.ScenarioResult(NAME, TITLE, runner.SERVER_NAME, ex.secret, ex.client, ex.stats,
                                               obs, checks, ex.pcap, ex.keylog, decrypted, notes=notes), started)
