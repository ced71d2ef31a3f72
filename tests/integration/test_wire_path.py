"""The wire is truly on the path: it sees every packet between the others, once."""

from __future__ import annotations

import json
import secrets

import pytest

from labctl import capture
from tests import pcaputil

pytestmark = pytest.mark.integration


def exchange_on_wire(session_lab, name: str, *client_args: str) -> tuple[dict, list[pcaputil.Packet], dict]:
    lab = session_lab.lab()
    capture.start(lab, name)
    result = session_lab.run("client", "--json", "server.lab.test", *client_args)
    stats = capture.stop(lab, name)
    assert stats.complete, stats
    return json.loads(result.stdout), pcaputil.read(capture.read(lab, name)), {
        k: lab.address(k) for k in ("client", "server", "dns", "wire")}


def test_wire_sees_handshake_and_dns_exactly_once(session_lab):
    report, packets, addr = exchange_on_wire(session_lab, "onpath", "--secret", secrets.token_hex(8))
    assert report["ok"], report
    client, server, dns = addr["client"], addr["server"], addr["dns"]

    syns = [p for p in packets if p.syn and (p.src, p.dst, p.dport) == (client, server, 443)]
    syn_acks = [p for p in packets if p.syn_ack and (p.src, p.dst, p.sport) == (server, client, 443)]
    assert len(syns) == 1 and len(syn_acks) == 1, (syns, syn_acks)

    queries = pcaputil.dns_queries(packets, "server.lab.test")
    answers = pcaputil.dns_answers(packets, "server.lab.test")
    assert [(q.src, q.dst) for q in queries] == [(client, dns)]
    assert [(a.src, a.dst) for a in answers] == [(dns, client)]
    assert pcaputil.answer_addresses(answers[0]) == [server]
    assert report["address"] == server


def test_wire_records_each_packet_once(session_lab):
    """Forwarding sends every packet out again; `-Q in` must keep only the copy coming in."""
    _, packets, _ = exchange_on_wire(session_lab, "once", "--plain")
    keys = [(p.src, p.dst, p.proto, p.sport, p.dport, p.ip_id, p.flags, p.payload) for p in packets]
    assert len(packets) > 10
    assert len(keys) == len(set(keys)), "a packet was captured twice"


def test_plain_request_crosses_the_wire_in_clear(session_lab):
    """The capture holds the real bytes: the plain-TCP secret is readable in it."""
    secret = secrets.token_hex(12)
    report, packets, addr = exchange_on_wire(session_lab, "clear", "--plain", "--secret", secret)
    assert report["ok"]
    sent = b"".join(p.payload for p in packets if p.src == addr["client"] and p.dport == 80)
    assert secret.encode() in sent


def test_tls_request_hides_the_secret_on_the_wire(session_lab):
    secret = secrets.token_hex(12)
    report, packets, _ = exchange_on_wire(session_lab, "hidden", "--secret", secret)
    assert report["ok"] and report["version"] == "TLSv1.3"
    assert secret.encode() not in b"".join(p.payload for p in packets)
