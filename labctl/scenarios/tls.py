"""tls: TLS 1.3: the secret is ciphertext; addresses, DNS, SNI, ALPN, sizes and timing leak.

The safe defaults (TLS 1.3), and what still leaks.

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
from ..exchange import ExchangeResult
from ..lab import Lab
from ..tls.constants import TLS13
from . import Options

NAME = "tls"
TITLE = "TLS 1.3 with the safe defaults"
CHECKS = runner.tls_checks(TLS13)


def run(lab: Lab, options: Options = Options()) -> ExchangeResult:
    return runner.tls_scenario(lab, NAME, TITLE, [], TLS13)
