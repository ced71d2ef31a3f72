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

from .. import runner
from ..lab import Lab
from ..tls.constants import TLS13
from ..tls.analyzer import TlsConnection
from ..verdict import Check
from . import Options

NAME = "tls"
TITLE = "TLS 1.3 with the safe defaults"
SUMMARY = "TLS 1.3: the secret is ciphertext; addresses, DNS, SNI, ALPN, sizes and timing leak"
CHECKS = ("capture complete", "client exchange succeeded", "TLS 1.3 negotiated (ServerHello on the wire)",
          "secret not on the wire", "SNI leaks the name", "DNS query leaks the name",
          "certificate not in clear", "ciphertext on the wire is the request (decrypted with the key log)")
KEYLOG = True          # the client writes an NSS key log: `run tls --keylog FILE` saves it


def certificate_hidden(conn: TlsConnection | None) -> Check:
    """TLS 1.3 encrypts the Certificate message (RFC 8446 section 4.4.2): none readable on the wire."""
    certs = conn.certificates if conn else []
    hidden = conn is not None and not certs
    return Check("certificate not in clear", hidden,
                 "TLS 1.3 sends the Certificate encrypted" if hidden else f"{len(certs)} certificate(s) readable")


def run(lab: Lab, options: Options = Options()) -> runner.ExchangeResult:
    return runner.tls_scenario(lab, NAME, TITLE, [], TLS13, certificate_hidden)
