"""plaintext: the same request without TLS: the secret, request and response are readable.

The same request over plain TCP, to see what TLS would have hidden.

What it demonstrates: without TLS the wire carries everything. The secret
(here in a session cookie), the request line and the server's response are
readable in the captured packets, by anyone on the path.

What to look for in the capture: the DNS query, the TCP handshake to port 80,
then `GET / HTTP/1.1` and `Cookie: session=...` in clear in one packet.
"""

from __future__ import annotations

import time

from .. import render, runner
from ..exchange import ExchangeResult
from ..lab import Lab
from ..verdict import Check
from . import Options

NAME = "plaintext"
TITLE = "Plain HTTP: everything on the wire"
CHECKS = ("capture complete", "client exchange succeeded", "secret readable on the wire",
          "request line readable", "response readable", "DNS query leaks the name", "no TLS on the wire")


def run(lab: Lab, options: Options = Options()) -> ExchangeResult:
    started = time.monotonic()
    ex = runner.exchange(lab, NAME, ["--plain"], keylog=False)
    obs = ex.observation
    server = lab.address("server")
    flows = [f for f in obs.flows if f.server == server and f.server_port == 80]
    sent = b"".join(obs.stream(f, runner.C2S) for f in flows)
    received = b"".join(obs.stream(f, runner.S2C) for f in flows)
    request_line = ex.client.get("request", "").split("\r\n", 1)[0]
    checks = [
        runner.check_capture(ex.stats),
        runner.check_client(ex.client),
        runner.check_secret_present(obs, ex.secret),
        Check("request line readable", bool(request_line) and request_line.encode() in sent,
              f"{render.quoted(request_line)} in the client's TCP stream"),
        Check("response readable", received.startswith(b"HTTP/1.1 200"),
              f"the server's stream starts {render.quoted(received[:15])}"),
        runner.check_dns_leak(obs, runner.SERVER_NAME, lab),
        Check("no TLS on the wire", not obs.tls, f"{len(obs.tls)} TLS connection(s) seen"),
    ]
    return runner.finish(ExchangeResult(NAME, TITLE, checks, ex.stats, obs, ex.pcap, ex.keylog,
                                               lanes=ex.lanes, secret=ex.secret, client=ex.client), started)
