"""The analyzer on captures the tests make themselves (tests/synth.py), checked against tshark."""

from __future__ import annotations

import pytest

from labctl import runner
from labctl.analyzer import CaptureFormatError, analyze, analyze_file
from tests import synth, tshark


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyzer")
    return {
        "tls13": synth.tls_session(tmp, name="tls13"),
        "tls12": synth.tls_session(tmp, max_version="1.2", name="tls12"),
        "tls12-ecdsa": synth.tls_session(tmp, max_version="1.2", key_type="ecdsa", name="tls12e"),
        "rsa-kx": synth.tls_session(tmp, max_version="1.2", ciphers="AES128-GCM-SHA256", name="rsakx"),
        "plain": synth.plain_session(tmp, request=synth.DEFAULT_REQUEST, response=synth.DEFAULT_RESPONSE),
    }


@pytest.mark.parametrize("name", ["tls13", "tls12", "tls12-ecdsa", "rsa-kx"])
def test_records_match_tshark(sessions, name):
    session = sessions[name]
    conn = analyze_file(session.pcap).tls[0]
    ours = {d: [(r.content_type, r.length) for r in conn.records if r.direction == d] for d in ("c2s", "s2c")}
    assert ours == tshark.records(session.pcap)


@pytest.mark.parametrize("name", ["tls13", "tls12", "rsa-kx"])
def test_hellos_match_tshark(sessions, name):
    session = sessions[name]
    conn = analyze_file(session.pcap).tls[0]
    [(sni, offered)] = tshark.fields(session.pcap, "tls.handshake.type == 1", "tls.handshake.extensions_server_name",
                                     "tls.handshake.ciphersuite")
    assert conn.client_hello.sni == sni == "server.lab.test"
    assert len(conn.client_hello.cipher_suites) == len(offered.split(","))
    suite, legacy, supported = tshark.fields(session.pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite",
                                             "tls.handshake.version",
                                             "tls.handshake.extensions.supported_version")[0]
    assert conn.server_hello.cipher_suite == int(suite, 16)
    assert conn.server_hello.version_code == int(supported or legacy, 16)
    assert conn.version == {"TLSv1.3": "TLS 1.3", "TLSv1.2": "TLS 1.2"}[session.version]


def test_rsa_key_exchange_suite_is_named(sessions):
    assert analyze_file(sessions["rsa-kx"].pcap).tls[0].server_hello.cipher_name == "TLS_RSA_WITH_AES_128_GCM_SHA256"


@pytest.mark.parametrize("name", ["tls12", "tls12-ecdsa"])
def test_tls12_certificate_is_read_in_clear(sessions, name):
    session = sessions[name]
    [cert] = analyze_file(session.pcap).tls[0].certificates
    subject = tshark.fields(session.pcap, "tls.handshake.type == 11", "x509sat.printableString",
                            "x509sat.uTF8String")
    assert "server.lab.test" in cert.subject and "server.lab.test" in cert.sans
    assert "server.lab.test" in "".join(",".join(row) for row in subject)


def test_tls13_certificate_is_not_readable(sessions):
    assert analyze_file(sessions["tls13"].pcap).tls[0].certificates == []


def test_secret_search_finds_clear_text_and_not_ciphertext(sessions):
    secret = b"s3cr3t-cookie-value"
    assert analyze_file(sessions["plain"].pcap).find(secret)
    assert analyze_file(sessions["tls13"].pcap).find(secret) == []


def test_secret_split_across_segments_is_found_in_the_stream(tmp_path):
    """A secret cut in two by TCP segmentation is in no single packet, only in the reassembled stream."""
    secret = b"s3cr3t-" + b"k" * 30
    request = b"POST /login HTTP/1.1\r\n\r\n" + b"a" * (synth.SEGMENT - 40) + secret
    session = synth.plain_session(tmp_path, request=request, response=synth.DEFAULT_RESPONSE)
    places = analyze_file(session.pcap).find(secret)
    assert places and all(p.startswith("stream") for p in places)


def test_application_data_bytes_per_direction(sessions):
    conn = analyze_file(sessions["tls12"].pcap).tls[0]
    assert conn.app_data_bytes("c2s") >= len(synth.DEFAULT_REQUEST)
    assert conn.app_data_bytes("s2c") >= len(synth.DEFAULT_RESPONSE)


def test_flows_count_packets_and_bytes_per_direction(sessions):
    obs = analyze_file(sessions["tls13"].pcap)
    [flow] = obs.flows
    assert (flow.server, flow.server_port) == (synth.SERVER_IP, 443)
    rows = tshark.fields(sessions["tls13"].pcap, "tcp", "ip.src", "tcp.len")
    assert flow.packets["c2s"] == sum(1 for src, _ in rows if src == synth.CLIENT_IP)
    assert flow.payload_bytes["s2c"] == sum(int(n) for src, n in rows if src == synth.SERVER_IP)


# -- what the analyzer refuses, and what it does not claim ---------------------------------

def test_a_file_that_is_not_a_capture(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("certainly not a pcap, but long enough to have a header\n")
    with pytest.raises(CaptureFormatError, match="is not a pcap or pcapng file"):
        analyze_file(path)


def test_an_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="too short for a pcap header"):
        analyze_file(path)


def test_a_capture_cut_short(sessions, tmp_path):
    data = sessions["tls13"].pcap.read_bytes()
    with pytest.raises(CaptureFormatError, match=r"cut short: it ends inside a packet record after \d+ whole"):
        analyze(data[:len(data) // 2 + 7], name="half.pcap")


def test_a_capture_without_tls_is_reported_as_such_not_as_a_pass(sessions):
    obs = analyze_file(sessions["plain"].pcap)
    assert obs.tls == []
    assert not runner.check_tls_seen(None, "TLS 1.3").passed
    check, plain = runner.check_decryption(None, "", {}, "x")
    assert not check.passed and plain is None
    assert not runner.check_sni_leak(None, "server.lab.test").passed


def test_decryption_check_fails_with_a_foreign_key_log(sessions):
    conn = analyze_file(sessions["tls13"].pcap).tls[0]
    foreign = sessions["tls12"].keylog.read_text()
    check, _ = runner.check_decryption(conn, foreign, {"request": synth.DEFAULT_REQUEST.decode()}, "s3cr3t")
    assert not check.passed and "no secrets for this connection" in check.evidence


def test_decryption_check_passes_with_the_right_key_log(sessions):
    session = sessions["tls13"]
    conn = analyze_file(session.pcap).tls[0]
    check, plain = runner.check_decryption(conn, session.keylog.read_text(),
                                           {"request": session.request.decode("latin-1")}, "s3cr3t-cookie-value")
    assert check.passed, check.evidence
    assert plain["c2s"] == session.request and plain["s2c"] == session.response
