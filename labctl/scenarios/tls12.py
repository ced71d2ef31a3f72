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

from .. import runner
from ..lab import Lab
from ..tls.analyzer import TlsConnection
from ..tls.constants import TLS12
from ..verdict import Check
from . import Options

NAME = "tls12"
TITLE = "TLS 1.2: the certificate is readable on the wire"
SUMMARY = "TLS 1.2: the secret is ciphertext, but the server certificate crosses in clear"
CHECKS = ("capture complete", "client exchange succeeded", "TLS 1.2 negotiated (ServerHello on the wire)",
          "secret not on the wire", "SNI leaks the name", "DNS query leaks the name",
          "certificate readable in clear", "ciphertext on the wire is the request (decrypted with the key log)")
KEYLOG = True          # the client writes an NSS key log: `run tls12 --keylog FILE` saves it


def certificate_readable(conn: TlsConnection | None) -> Check:
    """TLS 1.2 sends the Certificate message in clear (RFC 5246 section 7.4.2): the leaf is readable."""
    leaf = conn.certificates[0] if conn and conn.certificates else None
    return Check("certificate readable in clear",
                 leaf is not None and f"CN={runner.SERVER_NAME}" in leaf.subject and runner.SERVER_NAME in leaf.sans,
                 f"subject {leaf.subject}; issuer {leaf.issuer}" if leaf else "no Certificate message in clear")


def run(lab: Lab, options: Options = Options()) -> runner.ExchangeResult:
    return runner.tls_scenario(lab, NAME, TITLE, ["--max-version", "1.2"], TLS12, certificate_readable)
