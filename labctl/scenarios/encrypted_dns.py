"""encrypted-dns: DNS over TLS and HTTPS hide the lookup; the resolver's address, sizes and the SNI still leak.

Encrypting the DNS lookup moves the leak, it does not end it.

What it demonstrates: the client resolves server.lab.test through the lab's
resolver encrypted, once over TLS (RFC 7858, port 853) and once over HTTPS
(RFC 8484, HTTP/2 on port 443), both answered by unbound (services/dns)
with its certificate checked against the lab CA. On the wire there is no
DNS question for the name in clear any more. What remains: the resolver's
address and port (853 says "DNS over TLS" by itself), the sizes of the
query and answer records, and then the ClientHello of the connection that
follows, whose SNI names the server in clear. Encrypted Client Hello (ECH,
the encrypted_client_hello extension) would hide that too; the lab's
OpenSSL 3.0 does not implement it, so no ClientHello here carries it.

What to look for in the capture: TLS to the resolver's port 853 and 443
(SNI dns.lab.test, ALPN h2 for DoH), no UDP port 53 question for the name,
then TLS to the server with server_name server.lab.test.
"""

from __future__ import annotations

import time

from .. import attack, render, runner
from ..certs import RESOLVER_NAME, SERVER_NAME
from ..lab import Lab
from ..tls.analyzer import C2S, S2C, TlsConnection
from ..tls.constants import APPLICATION_DATA, EXT_ENCRYPTED_CLIENT_HELLO
from ..verdict import Check
from . import Options

NAME = "encrypted-dns"
TITLE = "Encrypted DNS: the lookup hidden, the name still in the SNI"
CHECKS = ("capture complete", "clients resolved the name over TLS and over HTTPS",
          "no DNS question for the name in clear", "DNS over TLS to the resolver's port 853",
          "DNS over HTTPS to the resolver's port 443 (ALPN h2)", "SNI still names the server",
          "no Encrypted Client Hello (this OpenSSL has none)")
WAYS = ("dot", "doh")


def sizes(conn: TlsConnection, direction: str) -> str:
    """The application_data record lengths one way (bytes), handshake included: what an observer reads
    of a lookup."""
    return " ".join(str(r.length) for r in conn.records
                    if r.direction == direction and r.content_type == APPLICATION_DATA) or "none"


def record_sizes(conn: TlsConnection) -> str:
    return f"↑ {sizes(conn, C2S)} / ↓ {sizes(conn, S2C)}"


def run(lab: Lab, options: Options = Options(), ways: tuple[str, str] = WAYS) -> attack.AttackResult:
    """WAYS is how each of the two clients resolves (client.py --dns); a test passes ("system",
    "system") to switch the encryption off and holds the checks to failing."""
    started = time.monotonic()
    secrets = [runner.new_secret() for _ in ways]
    b = runner.batch(lab, NAME, [[SERVER_NAME, "--dns", way, "--secret", secret]
                                 for way, secret in zip(ways, secrets)])
    obs = b.observation
    client, dns, server = lab.address("client"), lab.address("dns"), lab.address("server")
    clear = [d for d in obs.dns if d.name.rstrip(".").lower() == SERVER_NAME]
    to_resolver = {port: [t for t in obs.tls if t.flow.client == client and t.flow.server == dns
                          and t.flow.server_port == port] for port in (853, 443)}
    to_server = [t for t in obs.tls if t.flow.client == client and t.flow.server == server]
    snis = [t.client_hello.sni for t in to_server if t.client_hello]
    hellos = [t.client_hello for t in obs.tls if t.client_hello]
    ech = [h.sni for h in hellos if EXT_ENCRYPTED_CLIENT_HELLO in h.extensions]
    vias = [str(r.get("resolver", {}).get("via")) for r in b.reports]
    resolved = [r for r in b.reports if r.get("ok") and r.get("address") == server]

    def resolver_check(name: str, port: int, alpn: str | None) -> Check:
        conns = to_resolver[port]
        good = [t for t in conns if t.client_hello and t.client_hello.sni == RESOLVER_NAME and t.server_hello
                and (alpn is None or alpn in t.client_hello.alpn)]
        return Check(name, bool(good), f"{len(conns)} TLS connection(s) to {dns}:{port}" + (
            f", SNI {good[0].client_hello.sni}, ALPN {','.join(good[0].client_hello.alpn) or 'none'}; "
            f"records {record_sizes(good[0])} bytes" if good and good[0].client_hello else ""))

    checks = [
        runner.check_capture(b.stats),
        Check(CHECKS[1], len(resolved) == 2 and vias == list(WAYS),
              f"resolved by {', '.join(vias)} to {', '.join(str(r.get('address')) for r in b.reports)}"
              f" (the server is {server})"),
        Check(CHECKS[2], not clear, f"{len(obs.dns)} DNS messages in clear on the wire, "
              f"{len(clear)} about {SERVER_NAME}" + (f" ({clear[0].src} → {clear[0].dst})" if clear else "")),
        resolver_check(CHECKS[3], 853, None),
        resolver_check(CHECKS[4], 443, "h2"),
        Check(CHECKS[5], len(snis) == 2 and all(s == SERVER_NAME for s in snis),
              f"ClientHello server_name of the {render.counted(len(to_server), 'connection')} to {server}: "
              f"{', '.join(render.quoted(s) for s in snis if s) or 'none'}"),
        Check(CHECKS[6], bool(hellos) and not ech,
              f"{render.counted(len(hellos), 'ClientHello')} on the wire, {len(ech)} with encrypted_client_hello"),
    ]
    left = []
    for way, report in zip(ways, b.reports):
        resolver = report.get("resolver", {})
        left.append(f"--dns {way}: {SERVER_NAME} → {report.get('address', '?')}")
        if resolver.get("via") in WAYS:
            left.append(f"  asked {resolver.get('address')}:{resolver.get('port')} "
                        f"({'DNS over TLS' if resolver['via'] == 'dot' else 'DNS over HTTPS, HTTP/' + str(resolver.get('http_version'))})")
        else:
            left.append("  asked the system resolver (clear DNS, port 53)")
        left.append(f"  then {report.get('status') if report.get('ok') else 'failed: ' + str(report.get('error'))}")
    right = []
    for port, conns in to_resolver.items():
        if conns:
            right += [f"resolver {dns}:{port}, {render.counted(len(conns), 'TLS connection')}; record sizes (bytes):",
                      f"  ↑ {sizes(conns[0], C2S)}", f"  ↓ {sizes(conns[0], S2C)}"]
    right += [f"DNS in clear: {d.qtype} {d.name}" + (f" → {', '.join(d.answers)}" if d.response else "")
              for d in clear]
    right += [f"then TLS to {t.flow.server}:{t.flow.server_port}, SNI {t.client_hello.sni}"
              for t in to_server if t.client_hello]
    return attack.AttackResult(
        NAME, TITLE, checks, b.stats, obs, b.pcap, seconds=time.monotonic() - started, lanes=b.lanes,
        left=("what the clients did", left), right=("what the wire still shows", right),
        notes=["Encrypted Client Hello would hide the SNI as well; the lab's OpenSSL 3.0 does not implement it, "
               "so the one place the name still leaks is the ClientHello above."],
        secrets=secrets, data={"reports": b.reports, "clear_dns": [d.to_dict() for d in clear]})
