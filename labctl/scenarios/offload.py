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
the clear hop never crosses a network.

What to look for in the capture: three TLS connections from the client to
the proxy (SNI www, www-tls and www-local .lab.test), then the proxy's own
connections to the server: one plain HTTP to port 80 with the first secret
readable, one TLS to port 443 (SNI server.lab.test); for www-local none.
"""

from __future__ import annotations

import time

from .. import attack, render, runner
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
          "application on the proxy's loopback: secret on neither hop, no second hop on the wire")
CLEAR, TLS_BACKEND, LOOPBACK = PROXY_NAMES       # www, www-tls, www-local .lab.test (services/proxy/nginx.conf)


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


def run(lab: Lab, options: Options = Options(), fixes: tuple[str, str] = (TLS_BACKEND, LOOPBACK)
        ) -> attack.AttackResult:
    """FIXES names the proxy's host names the two fixed runs use; a test passes (CLEAR, CLEAR) to switch
    the fixes off and holds their checks to failing."""
    started = time.monotonic()
    names = (CLEAR, *fixes)
    secrets = [runner.new_secret() for _ in names]
    b = runner.batch(lab, NAME, [[name, "--secret", secret] for name, secret in zip(names, secrets)])
    obs = b.observation
    client, proxy, server = lab.address("client"), lab.address("proxy"), lab.address("server")
    front = [f for f in obs.flows if f.proto == "tcp" and f.client == client and f.server == proxy]
    back = [f for f in obs.flows if f.proto == "tcp" and f.client == proxy and f.server == server]
    hellos = [t.client_hello.sni or "" for t in obs.tls if t.flow in front and t.client_hello]
    ok = [r for r in b.reports if r.get("ok") and r.get("address") == proxy and r.get("version") == "TLSv1.3"]
    clear_back = [f for f in back if f.server_port == 80]
    tls_back = [t for t in obs.tls if t.flow in back and t.flow.server_port == 443]
    backend_sni = tls_back[0].client_hello.sni if tls_back and tls_back[0].client_hello else None

    def absent(secret: str) -> tuple[bool, str]:
        places = obs.find(secret.encode())
        return not places, (f"found in {', '.join(places[:2])}" if places else
                            f"in none of {len(obs.streams)} reassembled streams")

    tls_gone, tls_where = absent(secrets[1])
    local_gone, local_where = absent(secrets[2])
    checks = [
        runner.check_capture(b.stats),
        Check(CHECKS[1], len(ok) == 3 and sorted(hellos) == sorted(names),
              f"{len(ok)} of 3 clients got {', '.join(str(r.get('status')) for r in b.reports)} over TLS 1.3 from "
              f"{proxy}; ClientHello SNI {', '.join(str(h) for h in hellos) or 'none'}"),
        Check(CHECKS[2], bool(front) and not carrying(obs, secrets[0], front),
              f"{len(front)} client→proxy connections searched; "
              f"{', '.join(carrying(obs, secrets[0], front)) or 'the secret is in none'}"),
        Check(CHECKS[3], bool(carrying(obs, secrets[0], clear_back)),
              f"readable in {', '.join(carrying(obs, secrets[0], clear_back)) or 'no proxy→application stream'}"),
        Check(CHECKS[4], tls_gone and bool(tls_back) and backend_sni == SERVER_NAME and bool(b.reports[1].get("ok")),
              f"{tls_where}; the proxy's hop: "
              + (f"TLS to {tls_back[0].flow.server}:443, SNI {backend_sni}, certificate verified by nginx "
                 f"(the client got {b.reports[1].get('status')})" if tls_back else "no TLS to the backend")),
        Check(CHECKS[5], local_gone and len(back) == 2 and bool(b.reports[2].get("ok")),
              f"{local_where}; the proxy made {render.counted(len(back), 'connection')} to the server "
              f"for 3 requests ({', '.join(sorted(f':{f.server_port}' for f in back)) or 'none'})"),
    ]
    left = []
    for name, secret, report in zip(names, secrets, b.reports):
        left += [f"https://{name}/  secret {secret}",
                 f"  {report.get('status') if report.get('ok') else 'failed: ' + str(report.get('error'))}"
                 f" over {report.get('version')} to {report.get('address')}"]
    right = []
    for flow in sorted(back, key=lambda f: f.first_seen):
        right += hop_lines(obs, flow)
    right.append(f"{LOOPBACK}: to 127.0.0.1:8080 inside the proxy — not on any network, not on the wire"
                 if len(back) == 2 else f"{len(back)} proxy→server connections")
    return attack.AttackResult(
        NAME, TITLE, checks, b.stats, obs, b.pcap, seconds=time.monotonic() - started, lanes=b.lanes,
        left=("client → proxy (TLS ends at the proxy)", left),
        right=("proxy → application, as the wire saw it", right),
        secrets=secrets, revealed=[secrets[0]] if carrying(obs, secrets[0], clear_back) else [],
        notes=[f"the proxy is nginx at {proxy} (services/proxy/nginx.conf); the application is the lab's "
               f"server at {server}: a name per way of reaching it"],
        data={"reports": b.reports, "backend": [f.to_dict() for f in back]})
