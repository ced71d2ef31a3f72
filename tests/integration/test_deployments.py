"""The scenarios of real deployments on the real lab: offload, encrypted-dns, sslstrip.

Each verdict is checked against the capture by tshark (the independent
oracle), and each scenario is run once more with its fix switched off: the
checks that credit the fix must then fail, or they could not have failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import tshark

pytestmark = pytest.mark.integration


def run(session_lab, name: str, tmp_path: Path) -> tuple[dict, Path]:
    pcap = tmp_path / f"{name}.pcap"
    result = session_lab.run("run", name, "--json", "--pcap", str(pcap))
    doc = json.loads(result.stdout)
    assert result.returncode == (0 if doc["passed"] else 1)
    assert doc["passed"], doc["checks"]
    return doc, pcap


def verdicts(result) -> dict[str, bool]:
    return {c.name: c.passed for c in result.checks}


def secret_of(report: dict) -> str:
    return report["request"].split("session=")[1].split("\r\n")[0]


def test_offload_the_hop_behind_the_proxy_carries_the_secret_in_clear(session_lab, tmp_path):
    doc, pcap = run(session_lab, "offload", tmp_path)
    net = session_lab.lab().net()
    clear, over_tls, local, wrong = (secret_of(r) for r in doc["reports"])
    # tshark: the first secret in an HTTP Cookie from the proxy to the server's port 80, nowhere else.
    cookies = tshark.fields(pcap, f"http.cookie && ip.src == {net}.30 && tcp.dstport == 80", "http.cookie")
    assert [row[0] for row in cookies] == [f"session={clear}"]
    assert not tshark.fields(pcap, f'frame contains "{clear}" && ip.src == {net}.10', "frame.number")
    for hidden in (over_tls, local, wrong):
        assert hidden.encode() not in pcap.read_bytes()
    # The fixed hop: TLS from the proxy to the server, SNI server.lab.test (nginx proxy_ssl_server_name);
    # then the wrong name's, refused by nginx: the client got nginx's 502.
    snis = tshark.fields(pcap, f"tls.handshake.type == 1 && ip.src == {net}.30", "tls.handshake.extensions_server_name")
    assert [row[0] for row in snis] == ["server.lab.test", "wrong-host.lab.test"]
    assert doc["reports"][3]["status"].startswith("HTTP/1.1 502")
    # ... after a full handshake on that hop (no pre_shared_key, ext 41, in its ServerHello): the server
    # did send the certificate nginx refused, rather than resume the session www-tls made.
    [[stream]] = tshark.fields(pcap, 'tls.handshake.extensions_server_name == "wrong-host.lab.test"', "tcp.stream")
    [[types]] = tshark.fields(pcap, f"tcp.stream == {stream} && tls.handshake.type == 2", "tls.handshake.extension.type")
    assert "41" not in types.split(","), types
    # Three proxy→server connections for four requests: the loopback one never reached the wire.
    syns = tshark.fields(pcap, f"tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.src == {net}.30", "tcp.dstport")
    assert sorted(row[0] for row in syns) == ["443", "443", "80"]


def test_offload_fixes_switched_off_fail_their_checks(session_lab):
    from labctl.scenarios import Options, offload

    result = offload.run(session_lab.lab(), Options(), fixes=(offload.CLEAR, offload.CLEAR))
    got = verdicts(result)
    assert got["secret in clear on the proxy→application hop"]
    assert not got["TLS to the backend: secret on neither hop"]
    assert not got["application on the proxy's loopback: secret on neither hop, no second hop on the wire"]


def test_encrypted_dns_hides_the_question_but_not_the_sni(session_lab, tmp_path):
    doc, pcap = run(session_lab, "encrypted-dns", tmp_path)
    net = session_lab.lab().net()
    assert all(r["resolver"]["via"] in ("dot", "doh") for r in doc["reports"])
    assert not tshark.fields(pcap, 'dns.qry.name == "server.lab.test"', "frame.number")
    assert tshark.fields(pcap, f"ip.dst == {net}.53 && tcp.dstport == 853 && tls.handshake.type == 1", "frame.number")
    alpn = tshark.fields(pcap, f"ip.dst == {net}.53 && tcp.dstport == 443 && tls.handshake.type == 1",
                         "tls.handshake.extensions_alpn_str")
    assert alpn and "h2" in alpn[0][0].split(",")
    snis = tshark.fields(pcap, f"ip.dst == {net}.20 && tls.handshake.type == 1", "tls.handshake.extensions_server_name")
    assert [row[0] for row in snis] == ["server.lab.test", "server.lab.test"]
    # The "no ECH" check reads each ClientHello's extension types: the same list, in order, as tshark's.
    from labctl.tls.analyzer import analyze

    ours = [list(t.client_hello.extensions) for t in analyze(pcap.read_bytes()).tls if t.client_hello]
    theirs = [[int(x) for x in row[0].split(",")]
              for row in tshark.fields(pcap, "tls.handshake.type == 1", "tls.handshake.extension.type")]
    assert ours == theirs and len(ours) == 4


def test_encrypted_dns_switched_off_fails_its_checks(session_lab):
    from labctl.scenarios import Options, encrypted_dns

    got = verdicts(encrypted_dns.run(session_lab.lab(), Options(), ways=("system", "system")))
    assert not got["no DNS question for the name in clear"]
    assert not got["DNS over TLS to the resolver's port 853"]
    assert not got["clients resolved the name over TLS and over HTTPS"]
    assert got["SNI still names the server"]


def test_sslstrip_reads_the_password_unless_hsts(session_lab, tmp_path):
    doc, pcap = run(session_lab, "sslstrip", tmp_path)
    net = session_lab.lab().net()
    stripped, protected = doc["stripped_client"], doc["hsts_client"]
    # tshark: the stripped client's password in a form posted to port 80; the HSTS client's nowhere.
    posted = tshark.fields(pcap, f"urlencoded-form && ip.src == {net}.10 && tcp.dstport == 80",
                           "urlencoded-form.value")
    assert any(stripped["secret"] in row[0] for row in posted), posted
    assert protected["secret"].encode() not in pcap.read_bytes()
    assert not any(protected["secret"] in json.dumps(e) for e in doc["attacker_log"])
    # The HSTS client's connections all went to port 443 (an attack capture holds each forwarded
    # packet twice, in and out of the wire: a set, not a list).
    ports = {s["local_port"] for s in protected["steps"] if s.get("local_port")}
    assert ports
    for port in ports:
        assert {r[0] for r in tshark.fields(pcap, f"tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.srcport == {port}",
                                            "tcp.dstport")} == {"443"}
    # The wire's own HTTPS to the site, with nothing left of the attack afterwards.
    assert tshark.fields(pcap, f"ip.src == {net}.254 && tcp.dstport == 443 && tls.handshake.type == 1", "frame.number")
    _, rules, _ = session_lab.lab().exec("wire", ["iptables", "-t", "nat", "-S", "PREROUTING"])
    assert "REDIRECT" not in rules
    # The attacker's log (the stripped password in it) left the wire with the run.
    status, _, _ = session_lab.lab().exec("wire", ["test", "-e", "/run/wire/attacker.log"])
    assert status == 1


def test_sslstrip_without_hsts_fails_its_checks(session_lab):
    from labctl.scenarios import Options, sslstrip

    got = verdicts(sslstrip.run(session_lab.lab(), Options(), hsts=False))
    assert got["stripped client posted its password in clear"]
    assert not got["HSTS client never used plain HTTP"]
    assert not got["attacker got nothing from the HSTS client"]


@pytest.mark.parametrize("preload", ["www-local.lab.test", "WWW-Local.Lab.Test"])   # RFC 6797 8.2: any case
def test_hsts_from_a_preload_list_works_like_an_earlier_visit(session_lab, preload):
    lab = session_lab.lab()
    status, out, _ = lab.exec("client", ["python3", "/app/client.py", "www-local.lab.test", "--browse", "--path",
                                         "/login", "--secret", "x", "--hsts-preload", preload], user="lab")
    report = json.loads(out)
    assert report["ok"] and report["steps"][0]["upgraded"]
    assert all(s["url"].startswith("https://") for s in report["steps"] if not s.get("upgraded"))


def test_a_server_that_answers_no_http_is_a_failed_exchange(session_lab):
    # The resolver's :443 speaks only HTTP/2 (DNS over HTTPS): the client's HTTP/1.1 gets no response.
    result = session_lab.run("client", "dns.lab.test", "--secret", "x")
    assert result.returncode == 1
    assert "http: the server closed the connection without an HTTP response" in result.stdout
