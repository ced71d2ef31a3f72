"""#13, the TLS handshake as Wireshark reads it: the inputs of tests/captures held to tshark's values.

Each expected value below is what tshark 4.0 reports on the same file (the
command is beside it), asserted as a constant and, where tshark is installed,
checked against tshark itself. The inputs are described in
tests/captures/CASES.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl import render
from labctl.tls.analyzer import C2S, S2C, CaptureFormatError, TlsConnection, _certificate, analyze, analyze_file
from labctl.tls.constants import (ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE, TLS12, TLS13,
                                  version_name)
from tests import synth, tshark

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def connections(name: str) -> list[TlsConnection]:
    return analyze_file(CAPTURES / name).tls


def fields(name: str, display_filter: str, *names: str) -> list[list[str]]:
    """tshark's rows for the capture, with out-of-order reassembly as CASES.md's values were taken."""
    return tshark.fields(CAPTURES / name, display_filter, *names, options=("-o", "tcp.reassemble_out_of_order:TRUE"))


def text(name: str) -> str:
    return render.observation_text(name, analyze_file(CAPTURES / name))


# -- 1. HelloRetryRequest (RFC 8446 4.1.4) ------------------------------------------------------------

# tshark -Y 'tls.handshake.type == 2' -e tls.handshake.random -e tls.handshake.extensions_key_share_group
#        -e tls.handshake.extensions_key_share_selected_group -e tls.handshake.ciphersuite
HRR = [["cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c", "", "29", "0x1302"],
       ["32a3a25bf208d45bc5308dd787edc44c79c2488b478e7a0b5cd393783c88b113", "29", "", "0x1302"]]
# tshark -Y 'tls.handshake.type == 1' -e tls.handshake.extensions_key_share_group: P-521 first, then X25519
HRR_CLIENT_SHARES = [["25"], ["29"]]


def test_a_hello_retry_request_is_shown_as_such_and_the_second_server_hello_is_the_server_hello():
    [conn] = connections("gen_tls13_hrr.pcap")
    hrr, hello = conn.hello_retry_request, conn.server_hello
    assert hrr is not None and hello is not None
    assert (hrr.group, hrr.cipher_suite, hrr.version, hrr.cookie) == (int(HRR[0][2]), int(HRR[0][3], 16), TLS13, False)
    assert (hello.random.hex(), hello.group, hello.cipher_suite) == (HRR[1][0], int(HRR[1][1]), int(HRR[1][3], 16))
    assert conn.first_client_hello is not None and conn.client_hello is not None
    assert conn.first_client_hello.key_share_groups == ("secp521r1",)      # group 25
    assert conn.client_hello.key_share_groups == ("x25519",)               # group 29
    assert conn.to_dict()["hello_retry_request"]["selected_group"] == "x25519"
    assert fields("gen_tls13_hrr.pcap", "tls.handshake.type == 2", "tls.handshake.random",
                  "tls.handshake.extensions_key_share_group", "tls.handshake.extensions_key_share_selected_group",
                  "tls.handshake.ciphersuite") == HRR
    assert fields("gen_tls13_hrr.pcap", "tls.handshake.type == 1",
                  "tls.handshake.extensions_key_share_group") == HRR_CLIENT_SHARES


def test_the_second_client_hello_after_the_compatibility_change_cipher_spec_is_in_clear():
    """TLS 1.3's ChangeCipherSpec (RFC 8446 D.4) changes nothing: the ClientHello after it crossed in clear."""
    [conn] = connections("gen_tls13_hrr.pcap")
    clear = [(r.direction, r.content_type) for r, sealed in zip(conn.records, conn.encrypted_records()) if not sealed]
    assert clear == [(C2S, HANDSHAKE), (S2C, HANDSHAKE), (S2C, CHANGE_CIPHER_SPEC), (C2S, CHANGE_CIPHER_SPEC),
                     (C2S, HANDSHAKE), (S2C, HANDSHAKE)]
    # tshark -Y 'tls.handshake.type' -e tls.handshake.type: 1, 2, 1, 2 (frames 4, 6, 8, 9)
    assert [m[0] for m in conn.handshake_messages(C2S)] == [1, 1]
    assert [m[0] for m in conn.handshake_messages(S2C)] == [2, 2]


def test_the_view_names_the_hello_retry_request_and_the_group_it_asked_for():
    shown = text("gen_tls13_hrr.pcap")
    assert "HelloRetryRequest: the server asked for a key share in x25519" in shown
    assert "the first ClientHello sent secp521r1" in shown
    assert "chose TLS 1.3, TLS_AES_256_GCM_SHA384, key share x25519" in shown
    assert "cert  encrypted (TLS 1.3 sends it after ServerHello)" in shown


# -- 1b. TLS 1.3 drafts: each ServerHello read with its draft's layout ---------------------------------

# tshark -Y 'tls.handshake.type == 2' -e tcp.stream -e tls.handshake.version
#        -e tls.handshake.extensions.supported_version -e tls.handshake.random -e tls.handshake.ciphersuite
#        -e tls.handshake.extensions_key_share_group
DRAFTS = [["0", "0x7f12", "", "910f37c360c84f04a88b3cdf227bdbcd4880ae9fe9cc6ba4221554377c9951f8", "0x1301", "29"],
          ["1", "0x7f15", "", "ecdadd142a752e0b2650009fcabafce65f1625e992e33dfa9223fc17dc88e7f2", "0x1302", "29"],
          ["2", "0x0303", "0x7f16", "860e0d5f1b99879213c6910168f74e62cdb9472b3baa80ee3fd6f1893a711df5", "0x1301", "29"]]
# tshark -Y 'tls.handshake.type == 6' -e tls.handshake.version -e tls.handshake.extensions_key_share_selected_group
DRAFT_HRR = [["0x7f12", "29"]]


def test_a_draft_server_hello_is_read_with_its_drafts_layout():
    conns = connections("hand_tls13_drafts.pcap")
    ours = [[str(i), f"0x{c.server_hello.legacy_version:04x}",
             f"0x{c.server_hello.version:04x}" if c.server_hello.version != c.server_hello.legacy_version else "",
             c.server_hello.random.hex(), f"0x{c.server_hello.cipher_suite:04x}", str(c.server_hello.group)]
            for i, c in enumerate(conns) if c.server_hello]
    assert ours == DRAFTS
    # Drafts <= 21 had no session id echo nor compression method: nothing is made up for them.
    assert [c.server_hello.compression_method for c in conns] == [None, None, 0]
    assert [version_name(c.version) for c in conns] == ["TLS 1.3 (draft 18)", "TLS 1.3 (draft 21)", "TLS 1.3 (draft 22)"]
    assert all(c.certificates_encrypted for c in conns)
    assert fields("hand_tls13_drafts.pcap", "tls.handshake.type == 2", "tcp.stream", "tls.handshake.version",
                  "tls.handshake.extensions.supported_version", "tls.handshake.random", "tls.handshake.ciphersuite",
                  "tls.handshake.extensions_key_share_group") == DRAFTS


def test_a_drafts_own_hello_retry_request_is_read():
    draft18 = connections("hand_tls13_drafts.pcap")[0]
    hrr = draft18.hello_retry_request
    assert hrr is not None and [[f"0x{hrr.version:04x}", str(hrr.group)]] == DRAFT_HRR
    assert hrr.cipher_suite is None                         # a draft-18 HelloRetryRequest names no suite
    assert draft18.first_client_hello is not None and draft18.first_client_hello.key_share_groups == ("secp256r1",)
    assert fields("hand_tls13_drafts.pcap", "tls.handshake.type == 6", "tls.handshake.version",
                  "tls.handshake.extensions_key_share_selected_group") == DRAFT_HRR


# -- 2. Certificates ------------------------------------------------------------------------------------

# tshark -Y 'tls.handshake.type == 11' -e tcp.stream -e tls.handshake.certificate_length -e x509ce.dNSName
#        -e x509af.serialNumber
ZEEK = [["0", "1359", "www.cviis.org,cviis.org", "2b24aae3f69783"],
        ["1", "1539,1284,993", "valid.sfig2.catest.starfieldtech.com", "195736,07,00"],
        ["2", "1359", "www.cviis.org,cviis.org", "2b24aae3f69783"]]


def _chains(conns: list[TlsConnection]) -> list[list[str]]:
    return [[str(i), ",".join(str(c.length) for c in conn.certificates),
             ",".join(name for c in conn.certificates for name in c.sans),
             ",".join(c.serial for c in conn.certificates if c.serial)] for i, conn in enumerate(conns)]


def test_a_certificate_cryptography_refuses_is_listed_with_what_can_be_read():
    """www.cviis.org's BasicConstraints encodes cA=FALSE, a DER default: cryptography refuses its extensions."""
    conns = connections("zeek_missing-intermediate.pcap")
    assert _chains(conns) == ZEEK
    cviis = conns[0].certificates[0]
    assert cviis.refused and "EncodedDefault" in cviis.refused and cviis.readable
    assert cviis.subject == "CN=www.cviis.org,OU=Domain Control Validated"
    assert cviis.issuer.startswith("CN=Starfield Secure Certificate Authority - G2,")
    assert (cviis.not_before, cviis.not_after) == ("2014-04-17T16:44:04+00:00", "2015-06-18T18:18:03+00:00")
    assert fields("zeek_missing-intermediate.pcap", "tls.handshake.type == 11", "tcp.stream",
                  "tls.handshake.certificate_length", "x509ce.dNSName", "x509af.serialNumber") == ZEEK


def test_a_certificate_refused_is_said_in_the_view():
    shown = text("zeek_missing-intermediate.pcap")
    assert shown.count("cert  CN=www.cviis.org,OU=Domain Control Validated") == 2
    assert "(cryptography refused it; read by a walk of its DER)" in shown
    assert "+ 2 more certificates in the chain" in shown


# tshark -Y 'tls.handshake.type == 11' -e tls.handshake.certificate_length -e x509ce.dNSName
#        -e x509af.serialNumber (tshark marks the fourth, 41 bytes of text, Malformed)
BAD_CHAIN = [["365,370,368,41", "v4.wirelab.test,good.wirelab.test,ber.wirelab.test", "0bad000f,0bad0011,0bad0010"]]


def test_every_certificate_of_a_message_is_listed_whatever_the_others_are():
    [conn] = connections("hand_tls12_bad_certs.pcap")
    v4, good, ber, text_bytes = conn.certificates
    assert [c.subject for c in (v4, good, ber)] == [f"CN={n}.wirelab.test,O=wirelab" for n in ("v4", "good", "ber")]
    assert "not a valid X509 version" in v4.refused and "InvalidLength" in ber.refused and not good.refused
    assert not text_bytes.readable and text_bytes.subject == "" and text_bytes.length == 41
    assert text_bytes.sha256 == hashlib.sha256(b"this is no certificate: it is ASCII text.").hexdigest()
    assert [_chains([conn])[0][1:]] == BAD_CHAIN
    assert fields("hand_tls12_bad_certs.pcap", "tls.handshake.type == 11", "tls.handshake.certificate_length",
                  "x509ce.dNSName", "x509af.serialNumber") == BAD_CHAIN
    assert "unreadable as X.509" not in text("hand_tls12_bad_certs.pcap")      # the first is shown, then a count
    assert "+ 3 more certificates in the chain" in text("hand_tls12_bad_certs.pcap")


# tshark -Y 'tls.handshake.type == 11' -e tcp.stream -e tcp.srcport -e tls.handshake.certificate_length
#        -e x509af.serialNumber (the client's port is not 24436)
MTLS = [["0", "24436", "415,397", "7b623ec9c08e996eef8ca2df43692d7cb802cc,3cbc672fb8510c23c370adfa61c64494d76df0dd"],
        ["0", "60070", "447,397", "7b623ec9c08e996eef8ca2df43692d7cb802cd,3cbc672fb8510c23c370adfa61c64494d76df0dd"],
        ["1", "24436", "415,397", "7b623ec9c08e996eef8ca2df43692d7cb802cc,3cbc672fb8510c23c370adfa61c64494d76df0dd"],
        ["1", "60078", "", ""]]
# tshark -Y tls.alert_message -e tcp.stream -e tcp.srcport -e tls.alert_message.level -e tls.alert_message.desc
MTLS_ALERTS = [["0", "60070", "", ""], ["0", "24436", "", ""], ["1", "24436", "2", "40"]]


def test_client_certificate_chains_are_shown_as_the_clients():
    with_cert, without = connections("gen_tls12_mtls.pcap")
    ours = []
    for i, conn in enumerate((with_cert, without)):
        for port, chain in ((str(conn.flow.server_port), conn.certificates),
                            (str(conn.flow.client_port), conn.client_certificates or [])):
            ours.append([str(i), port, ",".join(str(c.length) for c in chain), ",".join(c.serial for c in chain)])
    assert ours == MTLS
    assert with_cert.certificate_requested and without.certificate_requested
    assert with_cert.client_certificates is not None
    assert [c.subject for c in with_cert.client_certificates] == ["CN=alice.client,O=wirelab", "CN=wirelab mTLS CA"]
    assert without.client_certificates == []                # an empty Certificate message, not a missing one
    assert [(a.direction, a.level, a.description, a.encrypted) for a in without.alerts] == [
        (S2C, "fatal", "handshake_failure", False)]
    assert fields("gen_tls12_mtls.pcap", "tls.handshake.type == 11", "tcp.stream", "tcp.srcport",
                  "tls.handshake.certificate_length", "x509af.serialNumber") == MTLS
    assert fields("gen_tls12_mtls.pcap", "tls.alert_message", "tcp.stream", "tcp.srcport",
                  "tls.alert_message.level", "tls.alert_message.desc") == MTLS_ALERTS
    shown = text("gen_tls12_mtls.pcap")
    assert "cert  the client's: CN=alice.client,O=wirelab" in shown
    assert "cert  the client's: none (its Certificate message was empty)" in shown
    assert "alert ↓ fatal handshake_failure (in clear)" in shown
    doc = with_cert.to_dict()
    assert [c["subject"] for c in doc["client_certificates_in_clear"]] == ["CN=alice.client,O=wirelab",
                                                                           "CN=wirelab mTLS CA"]


# -- 3. NULL cipher ------------------------------------------------------------------------------------

# tshark -q -z follow,tls,ascii,N: what each side sent, in clear
NULL_DATA = {
    "wsnotes_tls_tls-null.pcapng": [(b"GET / HTTP/1.1\r\nHost: 10.9.0.1\r\nUser-Agent: curl/7.46.0\r\nAccept: */*\r\n\r\n",
                                     b"HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n<HTML><BODY BGCOLOR=")],
    "gen_tls12_null_ciphers.pcap": [(b"GET /null/NULL-SHA256 HTTP/1.0\n", b"0.1/PTTH 652AHS-LLUN/llun/ TEG\n"),
                                    (b"GET /null/ECDHE-RSA-NULL-SHA HTTP/1.0\n", b"0.1/PTTH AHS-LLUN-ASR-EHDCE/llun/ TEG\n")],
}
# tshark -Y 'tls.handshake.type == 2' -e tls.handshake.ciphersuite; the MAC is HMAC-SHA256 or HMAC-SHA1
NULL_SUITES = {"wsnotes_tls_tls-null.pcapng": [["0x003b"]], "gen_tls12_null_ciphers.pcap": [["0x003b"], ["0xc010"]]}
NULL_MACS = {"wsnotes_tls_tls-null.pcapng": [32], "gen_tls12_null_ciphers.pcap": [32, 20]}
# tshark -Y 'tls.handshake.type' -e tcp.srcport -e tls.handshake.type: the Finished messages are readable too
NULL_HANDSHAKES = {"wsnotes_tls_tls-null.pcapng": [([1, 16, 20], [2, 11, 14, 20])],
                   "gen_tls12_null_ciphers.pcap": [([1, 16, 20], [2, 11, 14, 4, 20]),
                                                   ([1, 16, 20], [2, 11, 12, 14, 4, 20])]}


@pytest.mark.parametrize("name", sorted(NULL_DATA))
def test_a_null_ciphers_records_are_not_encrypted_and_their_content_is_read(name):
    conns = connections(name)
    assert [[f"0x{c.server_hello.cipher_suite:04x}"] for c in conns] == NULL_SUITES[name]
    assert [c.null_cipher_mac for c in conns] == NULL_MACS[name]
    for i, (conn, (request, response)) in enumerate(zip(conns, NULL_DATA[name])):
        assert not any(conn.encrypted_records())
        assert conn.clear_application_data(C2S) == request
        assert conn.clear_application_data(S2C).startswith(response)
        theirs = tshark.decrypted_streams(CAPTURES / name, None, stream=i, server_port=conn.flow.server_port)
        assert (conn.clear_application_data(C2S), conn.clear_application_data(S2C)) == (theirs[C2S], theirs[S2C])
        assert ([m[0] for m in conn.handshake_messages(C2S)],
                [m[0] for m in conn.handshake_messages(S2C)]) == NULL_HANDSHAKES[name][i]
    assert fields(name, "tls.handshake.type == 2", "tls.handshake.ciphersuite") == NULL_SUITES[name]


def test_a_null_ciphers_alerts_are_read():
    # tshark -Y tls.alert_message -e tcp.stream -e tls.alert_message.level -e tls.alert_message.desc
    theirs = fields("gen_tls12_null_ciphers.pcap", "tls.alert_message", "tcp.stream", "tls.alert_message.level",
                    "tls.alert_message.desc")
    assert theirs == [["0", "1", "0"], ["0", "1", "0"], ["1", "1", "0"], ["1", "1", "0"]]
    for conn in connections("gen_tls12_null_ciphers.pcap"):
        assert [(a.level, a.description, a.encrypted) for a in conn.alerts] == [("warning", "close_notify", False)] * 2


@pytest.mark.parametrize("name", sorted(NULL_DATA))
def test_the_view_never_calls_a_null_ciphers_records_ciphertext(name):
    shown = text(name)
    assert "not encrypted (NULL cipher): \"GET /" in shown
    assert "is a NULL cipher: application_data crosses in clear" in shown
    assert "ciphertext" not in shown.lower()
    doc = connections(name)[0].to_dict()
    assert doc["null_cipher"] is True and doc["clear_application_data"][C2S].startswith("GET /")
    assert {r["protection"] for r in doc["records"]} == {"clear", "NULL cipher"}


# -- 4. Renegotiation ----------------------------------------------------------------------------------

# tshark -Y tls -e frame.number -e tcp.srcport -e tls.record.content_type -e tls.record.length
#        -e tls.handshake.type (an encrypted handshake record has no type)
RENEGO = [["4", "48820", "22", "131", "1"], ["6", "14433", "22,22,22,22", "65,822,300,4", "2,11,12,14"],
          ["8", "48820", "22,20,22", "37,1,40", "16"], ["9", "14433", "22,20,22", "186,1,40", "4"],
          ["11", "48820", "23", "37", ""], ["12", "14433", "23", "37", ""],
          ["14", "48820", "22", "170", ""], ["15", "14433", "22,22,22,22", "113,846,324,28", ""],
          ["17", "48820", "22,20,22", "61,25,40", ""], ["18", "14433", "22,20,22", "210,25,40", ""],
          ["20", "48820", "23", "50", ""], ["21", "14433", "23", "50", ""],
          ["23", "48820", "21", "26", ""], ["25", "14433", "21", "26", ""]]


def test_a_renegotiation_is_shown_after_the_first_handshake():
    [conn] = connections("gen_tls12_renego.pcap")
    assert conn.server_hello is not None and conn.version == TLS12
    assert conn.server_hello.random.hex() == "162c2a0987f4f71aae4de9606db02b2c49dbc536102506c9a6e97e31c5b63d41"
    assert [c.subject for c in conn.certificates] == ["CN=wirelab.test"]
    again = conn.renegotiation()
    assert again is not None
    # The client's encrypted handshake record in frame 14 (an encrypted ClientHello) starts it; its
    # handshake records: 170, 61, 40 from the client, 113, 846, 324, 28, 210, 40 from the server.
    assert (again.direction, again.frame, again.handshake_records, again.completed) == (
        C2S, 14, {C2S: 3, S2C: 6}, True)
    theirs = fields("gen_tls12_renego.pcap", "tls", "frame.number", "tcp.srcport", "tls.record.content_type",
                    "tls.record.length", "tls.handshake.type")
    assert theirs == RENEGO
    types = {d: [(r.content_type, r.length) for r in conn.records if r.direction == d] for d in (C2S, S2C)}
    for direction, port in ((C2S, "48820"), (S2C, "14433")):
        assert types[direction] == [(int(t), int(n)) for row in RENEGO if row[1] == port
                                    for t, n in zip(row[2].split(","), row[3].split(","))]
    assert "reneg a second handshake, encrypted, began ↑ in frame 14" in text("gen_tls12_renego.pcap")


def test_a_renegotiations_change_cipher_spec_is_encrypted():
    """The second ChangeCipherSpec of each side (25 bytes: 1 of content, an 8-byte nonce and a 16-byte
    tag) is sent under the first handshake's keys; the first (1 byte) was not."""
    [conn] = connections("gen_tls12_renego.pcap")
    ccs = [(r.length, sealed) for r, sealed in zip(conn.records, conn.encrypted_records())
           if r.content_type == CHANGE_CIPHER_SPEC]
    assert sorted(ccs) == [(1, False), (1, False), (25, True), (25, True)]
    assert all(sealed for r, sealed in zip(conn.records, conn.encrypted_records())
               if r.content_type in (APPLICATION_DATA, ALERT))
    assert [a.encrypted for a in conn.alerts] == [True, True]


# -- damage: what is read off the wire never raises ------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])
def _der(name: str, index: int) -> bytes:
    """The DER of the INDEXth certificate of the first chain of NAME, cut from the capture's server stream."""
    obs = analyze_file(CAPTURES / name)
    [message] = [m for m in obs.tls[0].handshake_messages(S2C) if m[0] == 11]
    pos = 7
    for _ in range(index):
        pos += 3 + int.from_bytes(message[pos:pos + 3], "big")
    return message[pos + 3:pos + 3 + int.from_bytes(message[pos:pos + 3], "big")]


@FUZZ
@given(st.sampled_from([("hand_tls12_bad_certs.pcap", i) for i in range(4)] + [("zeek_missing-intermediate.pcap", 0)]),
       st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6), st.integers(0, 2000))
def test_a_damaged_certificate_is_listed_never_raised(which, flips, cut):
    der = bytearray(_der(*which))
    for pos, value in flips:
        if der:
            der[pos % len(der)] = value
    cert = _certificate(bytes(der[:cut]))
    assert cert.length == min(cut, len(der)) and len(cert.sha256) == 64
    assert cert.readable or (cert.subject, cert.serial) == ("", "")


@FUZZ
@given(st.sampled_from(["hand_tls13_drafts.pcap", "gen_tls12_mtls.pcap", "gen_tls12_null_ciphers.pcap",
                        "gen_tls13_hrr.pcap", "gen_tls12_renego.pcap"]),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_a_damaged_handshake_is_shown_never_raised(name, flips):
    data = bytearray((CAPTURES / name).read_bytes())
    for pos, value in flips:
        data[24 + pos % (len(data) - 24)] = value                 # past the file header
    try:
        obs = analyze(bytes(data), name=name)
    except CaptureFormatError:
        return
    obs.to_dict()
    render.observation_text(name, obs)
    for conn in obs.tls:
        conn.renegotiation()
        conn.readable_records()


def test_a_capture_begun_after_the_handshake_invents_no_alert_and_no_hello(tmp_path):
    """Cut before the first application_data: the closing alerts are encrypted (26 bytes under AES-GCM),
    as tshark says ("Encrypted Alert"), not 13 clear alerts; and no time is measured from a ClientHello
    the file does not hold (new-user tryout: `editcap -r` of a TLS 1.2 session)."""
    import dpkt

    from labctl.tls.analyzer import _orient
    session = synth.tls_session(tmp_path, max_version="1.2", name="whole")
    whole = analyze_file(session.pcap)
    first = min(r.frame for r in whole.tls[0].records if r.content_type == 23)
    cut = tmp_path / "mid.pcap"
    with open(session.pcap, "rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        packets = list(reader)
        with open(cut, "wb") as out:
            writer = dpkt.pcap.Writer(out, linktype=reader.datalink(), snaplen=262144)
            for number, (ts, frame) in enumerate(packets, 1):
                if number >= first:
                    writer.writepkt(frame, ts)
    observation = analyze_file(cut)
    [connection] = observation.tls
    assert connection.client_hello is None and connection.server_hello is None
    assert connection.alerts and all(a.encrypted for a in connection.alerts)
    theirs = tshark.fields(cut, "tls.alert_message", "_ws.col.info")
    assert all("Encrypted Alert" in info for _, info in theirs)
    assert "after ClientHello" not in render.observation_text("mid.pcap", observation)
    # Neither port well known: the one in the ephemeral range is the client's.
    assert _orient("tcp", ("127.0.0.1", 14456), ("127.0.0.1", 39554), 0)[0] == ("127.0.0.1", 39554)
    assert _orient("tcp", ("127.0.0.1", 39554), ("127.0.0.1", 14456), 0)[0] == ("127.0.0.1", 39554)


def test_a_tls13_connection_resumed_with_a_psk_sent_no_certificate():
    """tshark with the key log sees a Certificate message in streams 0 and 2 only: the resumed TLS 1.3
    connection (stream 1) sent none, so it is not said to be encrypted."""
    pcap, keys = CAPTURES / "gen_resumption.pcap", CAPTURES / "gen_resumption.keylog"
    connections = analyze_file(pcap).tls
    assert [c.certificates_encrypted for c in connections] == [True, False, False, False]
    assert [c.server_hello.psk for c in connections if c.server_hello] == [False, True, False, False]
    streams = tshark.fields(pcap, "tls.handshake.type == 11", "tcp.stream",
                            options=("-o", f"tls.keylog_file:{keys}"))
    assert sorted({int(s) for [s] in streams}) == [0, 2]
    assert "none sent: resumed with a pre-shared key" in render.observation_text("x", analyze_file(pcap))
