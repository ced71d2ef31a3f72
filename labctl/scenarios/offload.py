"""offload: a reverse proxy ends TLS; the request goes on in clear unless the hop behind it is protected too.

TLS left to a proxy protects the first hop only.

What it demonstrates: many programs never speak TLS themselves and leave it
to nginx in front of them (services/proxy). The client's TLS connection ends
at the proxy; from there the request, secret and all, goes on to the
application over plain HTTP, across the same network. The wire is on the
path of both hops: the client→proxy hop is ciphertext, the proxy→application
hop carries the secret in clear. Then the two fixes, side by side: TLS to the
backend as well (nginx verifies the application server's certificate against
the lab CA and its name), or the application on the proxy's own loopback, so
the clear hop never crosses a network. And the check that makes the second
TLS hop worth having: a name whose backend should be wrong-host.lab.test,
where the server's certificate is for other.lab.test, gets a 502 from nginx.

What to look for in the capture: four TLS connections from the client to
the proxy (SNI www, www-tls, www-local and www-wrongname .lab.test) and,
while each is open, the proxy's own connections to the server: plain HTTP to
port 80 with the first secret readable; TLS to port 443 (SNI
server.lab.test); none for www-local; TLS to port 443 (SNI
wrong-host.lab.test) that ends before any request.
"""

from __future__ import annotations

import time

from .. import attack, runner
from ..certs import PROXY_NAMES, SERVER_NAME
from ..lab import Lab
from ..tls.analyzer import C2S, S2C, Flow, Observation
from ..tls.constants import version_name
from ..verdict import Check
from . import Options

NAME = "offload"
TITLE = "TLS offload: a reverse proxy ends TLS, and the hop behind it"
CHECKS = ("capture complete", "clients reached the proxy over TLS", "secret not in clear on the client→proxy hop",
          "secret in clear on the proxy→application hop", "TLS to the backend: secret on neither hop",
          "the proxy checks the backend's certificate (a wrong name gets 502)",
          "application on the proxy's loopback: secret on neither hop, no second hop on the wire")
# www, www-tls, www-local, www-wrongname .lab.test (services/proxy/nginx.conf)
CLEAR, TLS_BACKEND, LOOPBACK, WRONG_NAME = PROXY_NAMES


def carrying(obs: Observation, secret: str, flows: list[Flow]) -> list[str]:
    """Those of FLOWS whose reassembled stream (either direction) holds SECRET, by their labels."""
    return [f.label for f in flows if any(secret.encode() in obs.stream(f, d) for d in (C2S, S2C))]


def hop_lines(obs: Observation, flow: Flow) -> list[str]:
    """What the wire shows of one proxy→application connection."""
    tls = next((t for t in obs.tls if t.flow is flow), None)
    if tls is None:
        request = obs.stream(flow, C2S).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        return [f"{flow.label}, in clear:"] + [f"  {line}" for line in request if line][:6]
    sni = tls.client_hello.sni if tls.client_hello else None
    return [f"{flow.label}, TLS:",
            f"  {version_name(tls.version) if tls.version else 'no ServerHello'}, SNI {sni or '(none)'}, "
            f"{sum(1 for r in tls.records if r.type_name == 'application_data')} application_data records"]


def behind(front: Flow | None, back: list[Flow]) -> list[Flow]:
    """The proxy's connections to the server made while FRONT (a client's connection to the proxy) was
    open: the hop behind that one request (the client runs one request at a time)."""
    if front is None:
        return []
    return [f for f in back if front.first_seen <= f.first_seen <= front.last_seen]


def run(lab: Lab, options: Options = Options(), fixes: tuple[str, str] = (TLS_BACKEND, LOOPBACK)
        ) -> attack.AttackResult:
    """FIXES names the proxy's host names the two fixed runs use; a test passes (CLEAR, CLEAR) to switch
    the fixes off and holds their checks to failing."""
    started = time.monotonic()
    names = (CLEAR, *fixes, WRONG_NAME)
    secrets = [runner.new_secret() for _ in names]
    b = runner.batch(lab, NAME, [[name, "--secret", secret] for name, secret in zip(names, secrets)])
    obs = b.observation
    client, proxy, server = lab.address("client"), lab.address("proxy"), lab.address("server")
    front = [f for f in obs.flows if f.proto == "tcp" and f.client == client and f.server == proxy]
    back = [f for f in obs.flows if f.proto == "tcp" and f.client == proxy and f.server == server]
    hellos = [t.client_hello.sni or "" for t in obs.tls if t.flow in front and t.client_hello]
    answered = [r for r in b.reports if r.get("ok") and r.get("address") == proxy and r.get("version") == "TLSv1.3"]
    # Each request's own hop behind the proxy, by the time its client's connection was open.
    hops = [behind(next((f for f in front if f.client_port == r.get("local_port")), None), back) for r in b.reports]
    clear_hop, tls_hop, local_hop, wrong_hop = hops
    tls_of = {id(t.flow): t for t in obs.tls}

    def tls_to_server(flows: list[Flow]) -> list[str]:
        """The SNI of each TLS connection among FLOWS to the server's port 443."""
        hellos = [tls_of[id(f)].client_hello for f in flows if f.server_port == 443 and id(f) in tls_of]
        return [str(hello.sni) for hello in hellos if hello is not None]

    def absent(secret: str) -> tuple[bool, str]:
        places = obs.find(secret.encode())
        return not places, (f"found in {', '.join(places[:2])}" if places else
                            f"in none of {len(obs.streams)} reassembled streams")

    tls_gone, tls_where = absent(secrets[1])
    local_gone, local_where = absent(secrets[2])
    wrong_gone, _ = absent(secrets[3])
    wrong_status = str(b.reports[3].get("status", ""))
    # A full handshake on that hop (no pre_shared_key in the ServerHello, RFC 8446 4.2.11): the server
    # sent the certificate nginx refused, rather than resuming a session www-tls made.
    wrong_full = [t for f in wrong_hop if (t := tls_of.get(id(f))) and t.server_hello and not t.server_hello.psk]
    checks = [
        runner.check_capture(b.stats),
        Check(CHECKS[1], len(answered) == len(names) and sorted(hellos) == sorted(names),
              f"{len(answered)} of {len(names)} clients got an HTTP answer over TLS 1.3 from {proxy} "
              f"({', '.join(str(r.get('status', r.get('error'))) for r in b.reports)}); "
              f"ClientHello SNI {', '.join(hellos) or 'none'}"),
        Check(CHECKS[2], bool(front) and not carrying(obs, secrets[0], front),
              f"{len(front)} client→proxy connections searched; "
              f"{', '.join(carrying(obs, secrets[0], front)) or 'the secret is in none'}"),
        Check(CHECKS[3], bool(carrying(obs, secrets[0], clear_hop)),
              f"readable in {', '.join(carrying(obs, secrets[0], clear_hop)) or 'no proxy→application stream'}"),
        Check(CHECKS[4], tls_gone and tls_to_server(tls_hop) == [SERVER_NAME] and bool(b.reports[1].get("ok"))
              and " 200 " in f"{b.reports[1].get('status')} ",
              f"{tls_where}; the proxy's hop: " + (f"TLS to {server}:443, SNI {', '.join(tls_to_server(tls_hop))}; "
                                                   f"the client got {b.reports[1].get('status')}"
                                                   if tls_to_server(tls_hop) else "no TLS to the server")),
        Check(CHECKS[5], " 502 " in f"{wrong_status} " and tls_to_server(wrong_hop) == ["wrong-host.lab.test"]
              and bool(wrong_full) and wrong_gone,
              f"{WRONG_NAME}: nginx asked the server for wrong-host.lab.test (SNI "
              f"{', '.join(tls_to_server(wrong_hop)) or 'none seen'}) in a "
              f"{'full handshake' if wrong_full else 'resumed or unfinished handshake'}, so the server sent its "
              f"certificate for that name (the verify case's, for other.lab.test; encrypted, TLS 1.3); nginx "
              f"answered the client {wrong_status or b.reports[3].get('error')}"),
        Check(CHECKS[6], local_gone and not local_hop and bool(b.reports[2].get("ok")),
              f"{local_where}; the proxy's connections to the server while that request was open: "
              f"{len(local_hop)} (of {len(back)} for {len(names)} requests)"),
    ]
    left = []
    for name, secret, report in zip(names, secrets, b.reports):
        left += [f"https://{name}/  secret {secret}",
                 f"  {report.get('status') if report.get('ok') else 'failed: ' + str(report.get('error'))}"
                 f" over {report.get('version')} to {report.get('address')}"]
    right = []
    for name, hop in zip(names, hops):
        right.append(f"{name}:")
        right += [f"  {line}" for flow in hop for line in hop_lines(obs, flow)] or [
            "  nothing on the wire: 127.0.0.1:8080 inside the proxy" if name == LOOPBACK else "  nothing"]
    return attack.AttackResult(
        NAME, TITLE, checks, b.stats, obs, b.pcap, seconds=time.monotonic() - started, lanes=b.lanes,
        left=("client → proxy (TLS ends at the proxy)", left),
        right=("proxy → application, as the wire saw it", right),
        secrets=secrets, revealed=[secrets[0]] if carrying(obs, secrets[0], clear_hop) else [],
        notes=[f"the proxy is nginx at {proxy} (services/proxy/nginx.conf); the application is the lab's "
               f"server at {server}: a name per way of reaching it"],
        data={"reports": b.reports, "backend": [f.to_dict() for f in back]})
