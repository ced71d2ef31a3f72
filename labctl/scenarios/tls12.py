"""tls12: TLS 1.2: the secret is ciphertext, but the server certificate crosses in clear.

TLS 1.2, where the server's certificate crosses the wire in clear.

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
from ..exchange import ExchangeResult
from ..lab import Lab
from ..tls.constants import TLS12
from . import Options

NAME = "tls12"
TITLE = "TLS 1.2: the certificate is readable on the wire"
CHECKS = runner.tls_checks(TLS12)


def run(lab: Lab, options: Options = Options()) -> ExchangeResult:
    return runner.tls_scenario(lab, NAME, TITLE, ["--max-version", "1.2"], TLS12)
