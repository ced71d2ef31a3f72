"""TCP damage and finding TLS in a stream (issue #13), on the real-world inputs of tests/captures.

Each expected value is tshark 4.0's, written here as a constant and, where
tshark is installed, checked against it live (tests/tshark.py). What the
capture did not hold is said (holes, records cut short, a side not captured),
never filled in; TLS after a clear preamble is found and the preamble named;
QUIC, DTLS and SSLv2 are named as not dissected, never "no TLS".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labctl import render
from labctl.tls.analyzer import TlsConnection, analyze_file
from labctl.tls.tcp import Direction, Hole
from tests import synth, tshark

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
NO_TLS = "no TLS in this capture"


def live() -> bool:
    return shutil.which("tshark") is not None


def records(connection: TlsConnection, direction: str, complete_only: bool = False) -> list[tuple[int, int]]:
    return [(r.content_type, r.length) for r in connection.records
            if r.direction == direction and (r.complete or not complete_only)]


def text(name: str) -> str:
    return render.observation_text(name, analyze_file(CAPTURES / name))


def doc(name: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(json.dumps(analyze_file(CAPTURES / name).to_dict()))
    return document


# -- 1. a hole is a hole ----------------------------------------------------------------

# tshark's records of heise_drop_frame80.pcap (tests.tshark.records); the server's segment at relative
# sequence 57005 (1440 bytes) was removed: tshark shows no record for the one the hole cuts (16408 bytes
# at stream offset 50637) and takes the records up again at its end (2044 in frame 91).
HEISE = {
    "c2s": [(22, 512), (22, 70), (20, 1), (22, 40), (23, 434), (23, 468), (23, 456), (23, 466), (23, 430),
            (23, 439), (23, 438), (23, 525), (23, 437), (23, 914), (23, 802), (23, 834), (23, 826), (23, 833),
            (23, 844), (23, 953), (21, 26)],
    "s2c": [(22, 110), (22, 3153), (22, 333), (22, 4), (20, 1), (22, 40), (23, 4368), (23, 1472), (23, 7264),
            (23, 16408), (23, 1016), (23, 16408), (23, 2044), (23, 16408), (23, 15460), (23, 1486), (23, 2022),
            (23, 15723), (23, 8664), (23, 1619), (23, 2252), (23, 911), (23, 1834), (23, 2267), (23, 502),
            (23, 6159), (23, 2252), (23, 1229), (23, 2324), (23, 905), (23, 489)],
}
HEISE_S2C_FRAMES = [6, 8, 8, 8, 12, 12, 21, 23, 32, 49, 50, 71, 91, 106, 121, 122, 128, 150, 165, 171, 176, 180,
                    185, 190, 195, 205, 211, 215, 220, 224, 228]


def test_heise_hole_is_never_joined_and_records_resume_after_it():
    pcap = CAPTURES / "heise_drop_frame80.pcap"
    [conn] = analyze_file(pcap).tls
    assert {d: records(conn, d, complete_only=True) for d in HEISE} == HEISE
    s2c = [r for r in conn.records if r.direction == "s2c" and r.complete]
    assert [r.frame for r in s2c] == HEISE_S2C_FRAMES          # where tshark shows each record
    # The record the hole cuts: its header says 16408 bytes; 6362 were captured before the hole.
    [cut] = [r for r in conn.records if not r.complete]
    assert (cut.direction, cut.length, cut.offset, len(cut.fragment), cut.missing) == ("s2c", 16408, 50637, 6362, 10046)
    assert not any(r.after_gap for r in conn.records)          # its end was captured: no record was lost unseen
    if live():
        assert tshark.records(pcap) == HEISE
        rows = tshark.fields(pcap, "tls.record && tcp.srcport == 443", "frame.number", "tls.record.length")
        assert [int(frame) for frame, lengths in rows for _ in lengths.split(",")] == HEISE_S2C_FRAMES


def test_heise_gap_is_reported_per_flow_and_direction():
    obs = analyze_file(CAPTURES / "heise_drop_frame80.pcap")
    [flow] = obs.flows
    # tshark: frame 82 is "previous segment not captured", at relative sequence 58445: 1440 bytes
    # (the segment before it ends at 57005) are missing, stream offsets 57004..58444.
    assert flow.holes == {"c2s": [], "s2c": [Hole(at=57004, offset=57004, size=1440, frame=82)]}
    assert flow.gaps == {"c2s": 0, "s2c": 1}
    assert obs.to_dict()["flows"][0]["holes"]["s2c"] == [{"offset": 57004, "bytes": 1440, "before_frame": 82}]
    out = text("heise_drop_frame80.pcap")
    assert "gap   ↓ 192.168.20.12:60679 → 193.99.144.85:443 tcp: 1 hole, 1440 B not captured" in out
    assert ("cut   ↓ 192.168.20.12:60679 → 193.99.144.85:443 tcp: application_data record of 16408 B at stream "
            "offset 50637: 6362 B of it read") in out
    if live():
        pcap = CAPTURES / "heise_drop_frame80.pcap"
        [(frame, seq)] = tshark.fields(pcap, "tcp.analysis.lost_segment", "frame.number", "tcp.seq")
        [(previous_end,)] = tshark.fields(pcap, "frame.number == 79", "tcp.nxtseq")
        assert (int(frame), int(seq) - int(previous_end)) == (82, 1440)


# Own inputs (make_tcp_cases.py): tshark's server records after a hole that swallowed record headers.
HOLE_HEADER_S2C = [(22, 65), (22, 407), (22, 116), (22, 4), (22, 186), (20, 1), (22, 40), (23, 724), (23, 724),
                   (23, 724), (21, 26)]
HOLE_RECORD_S2C = [(22, 65), (22, 407), (22, 115), (22, 4), (22, 186), (20, 1), (22, 40), (23, 724), (23, 724),
                   (23, 724), (23, 724), (23, 724), (23, 724), (23, 724), (21, 26)]


def test_hole_that_takes_headers_resumes_at_a_segment_opening_with_one():
    pcap = CAPTURES / "hole_header_tls12.pcap"
    [conn] = analyze_file(pcap).tls
    assert records(conn, "s2c", complete_only=True) == HOLE_HEADER_S2C
    [cut] = [r for r in conn.records if not r.complete]
    assert (cut.length, cut.offset, cut.missing) == (724, 3041, 20)
    # The cut record's end (3770) and the next header (4499) fell in the hole: the close_notify alert at
    # 6686 is found again, 2916 bytes later, by the segment that opens with it (frame 16, as in tshark).
    [after] = [r for r in conn.records if r.after_gap]
    assert (after.content_type, after.offset, after.after_gap, after.frame) == (21, 6686, 2916, 16)
    assert ("lost  ↓ 10.77.0.10:40404 → 10.77.0.20:443 tcp: records resume at stream offset 6686 (frame 16) after "
            "2916 B") in text("hole_header_tls12.pcap")
    if live():
        assert tshark.records(pcap)["s2c"] == HOLE_HEADER_S2C


def test_hole_of_one_whole_record_marks_the_next_one():
    pcap = CAPTURES / "hole_record_tls12.pcap"
    [conn] = analyze_file(pcap).tls
    assert records(conn, "s2c") == HOLE_RECORD_S2C                 # nothing cut: the hole is between records
    [after] = [r for r in conn.records if r.after_gap]
    assert (after.direction, after.offset, after.after_gap) == ("s2c", 3040, 729)     # one 729-byte record lost
    assert [r["after_gap"] for r in conn.to_dict()["records"] if r["offset"] == 3040] == [729]
    if live():
        assert tshark.records(pcap)["s2c"] == HOLE_RECORD_S2C


# -- 2. truncated frames ----------------------------------------------------------------------

# tshark lists a record whose header was captured in a frame cut by the snaplen, with its header's length.
SNAP128 = {"c2s": [(22, 183), (22, 37), (20, 1), (22, 40), (23, 56), (21, 26), (22, 220), (20, 1), (23, 69),
                   (23, 49), (23, 19)],
           "s2c": [(22, 65), (22, 186), (23, 1801), (21, 26), (22, 122), (23, 250), (23, 250), (23, 1794), (23, 19)]}
SNAP100 = {"c2s": [(22, 512), (20, 1), (23, 69), (23, 162), (23, 19)],
           "s2c": [(22, 122), (23, 250), (23, 177), (23, 19)]}


@pytest.mark.parametrize("name, expected, hello_frames", [
    ("snap128_nss.pcap", SNAP128, "frame.number == 4 || frame.number == 22"),
    ("snap100_tls13.pcap", SNAP100, "frame.number == 4")])
def test_truncated_frames_are_never_spliced(name, expected, hello_frames):
    pcap = CAPTURES / name
    obs = analyze_file(pcap)
    assert {d: [rec for t in obs.tls for rec in records(t, d)] for d in expected} == expected
    for conn in obs.tls:
        # The ClientHello's record was cut by the snaplen: tshark dissects no handshake message in it, and
        # neither do we (before the fix, its bytes from offset 57 on came from later segments).
        assert conn.client_hello is None and conn.server_hello is None
        first = conn.records[0]
        assert first.content_type == 22 and first.missing == first.length - len(first.fragment) > 0
    if live():
        assert tshark.records(pcap) == expected
        hellos = tshark.fields(pcap, hello_frames, "tls.record.length", "tls.handshake.type")
        assert len(hellos) == len(obs.tls) and all(kind == "" for _, kind in hellos)


def test_snap128_says_what_was_not_captured():
    obs = analyze_file(CAPTURES / "snap128_nss.pcap")
    hello = obs.tls[0].records[0]
    assert (hello.length, len(hello.fragment), hello.missing) == (183, 57, 126)
    if live():
        [(wire, captured)] = tshark.fields(CAPTURES / "snap128_nss.pcap", "frame.number == 4", "frame.len",
                                           "frame.cap_len")
        assert int(wire) - int(captured) == hello.missing          # the 126 bytes the snaplen cut
    out = text("snap128_nss.pcap")
    assert ("cut   ↑ 127.0.0.1:41386 → 127.0.0.1:443 tcp: handshake record of 183 B at stream offset 0: "
            "57 B of it read") in out
    assert "gap   ↑ 127.0.0.1:41386 → 127.0.0.1:443 tcp: 2 holes, 157 B not captured" in out


def test_a_segment_cut_at_the_end_of_the_stream_is_a_hole_too():
    half = Direction()
    half.add(1000, b"\x16\x03\x01\x00\xb7" + bytes(57), 0.0, 4, length=188)      # 62 of 188 bytes captured
    assembled = half.assemble()
    assert assembled.holes == [Hole(at=62, offset=62, size=126, frame=0)]
    assert assembled.missing == 126


# -- 3. sequence numbers that wrap ------------------------------------------------------------

def test_wrapping_sequence_numbers_without_syn_keep_the_handshake():
    pcap = CAPTURES / "frag_wrap-nosyn.pcap"
    [conn] = analyze_file(pcap).tls
    # tshark: SNI httpbin.org, cipher 0xc02f, four certificates (1504, 1101, 1174, 1145 bytes).
    assert conn.client_hello.sni == "httpbin.org"
    assert conn.server_hello.cipher_suite == 0xC02F
    assert len(conn.certificates) == 4
    assert {d: records(conn, d) for d in ("c2s", "s2c")} == {
        "c2s": [(22, 261), (22, 70), (20, 1), (22, 40), (23, 183)],
        "s2c": [(22, 53), (22, 4943), (22, 333), (22, 4), (22, 202), (20, 1), (22, 40), (23, 306)]}
    if live():
        [(sni,)] = tshark.fields(pcap, "tls.handshake.type == 1", "tls.handshake.extensions_server_name")
        [(suite,)] = tshark.fields(pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite")
        [(lengths,)] = tshark.fields(pcap, "tls.handshake.type == 11", "tls.handshake.certificate_length")
        assert (sni, int(suite, 16), len(lengths.split(","))) == ("httpbin.org", 0xC02F, 4)
        assert tshark.records(pcap) == {d: records(conn, d) for d in ("c2s", "s2c")}


def test_own_wrap_input_crosses_2_32_in_both_flights():
    pcap = CAPTURES / "wrap_nosyn_tls12.pcap"
    [conn] = analyze_file(pcap).tls
    assert (conn.client_hello.sni, conn.server_hello.cipher_suite) == ("server.lab.test", 0xC02C)
    assert len(records(conn, "s2c")) == 16 and not any(r.missing or r.after_gap for r in conn.records)
    if live():
        raw = tshark.fields(pcap, "tcp.len > 0", "tcp.srcport", "tcp.seq", "tcp.len",
                            options=("-o", "tcp.relative_sequence_numbers:FALSE"))
        wrapping = {int(port) for port, seq, n in raw if int(seq) + int(n) > 1 << 32}
        assert wrapping == {40404, 443}                                 # a segment of each side crosses 2^32
        assert tshark.records(pcap) == {d: records(conn, d) for d in ("c2s", "s2c")}


def test_direction_unwraps_and_orders_segments_seen_late():
    half = Direction()
    top = (1 << 32) - 4
    half.add(top + 8 - (1 << 32), b"IJKL", 0.0, 1)     # after the wrap, captured first
    half.add(top, b"ABCD", 0.1, 2)                     # before it, a retransmission seen late
    half.add(top + 4 - (1 << 32), b"EFGH", 0.2, 3)     # sequence number 0
    assembled = half.assemble()
    assert (assembled.data, assembled.holes, assembled.frames) == (b"ABCDEFGHIJKL", [], [2, 3, 1])


def test_direction_keeps_the_hole_before_the_first_captured_byte():
    half = Direction()
    half.isn = (1 << 32) - 2                           # the SYN said so; the first 10 bytes were lost
    half.add(8, b"xyz", 0.0, 5)
    assert half.assemble().holes == [Hole(at=0, offset=0, size=10, frame=5)]


# -- 4. one direction recorded -----------------------------------------------------------------

@pytest.mark.parametrize("name, missing, suite, sni", [
    ("scapy_tls_tcp_frag.pcap", "c2s", 0xC027, None),
    ("server_only_tls13.pcap", "c2s", 0x1302, None),
    ("client_only_tls13.pcap", "s2c", None, "server.lab.test"),
])
def test_one_side_captured_is_still_tls_with_the_missing_side_said(name, missing, suite, sni):
    pcap = CAPTURES / name
    obs = analyze_file(pcap)
    [conn] = obs.tls
    assert conn.missing_direction == missing
    assert (conn.server_hello.cipher_suite if conn.server_hello else None) == suite
    assert (conn.client_hello.sni if conn.client_hello else None) == sni
    assert obs.to_dict()["tls"][0]["missing_direction"] == missing
    out = render.observation_text(name, obs)
    side = "client → server" if missing == "c2s" else "server → client"
    assert f"{side} not captured" in out and NO_TLS not in out
    if live():
        assert tshark.records(pcap) == {d: records(conn, d) for d in ("c2s", "s2c")}
        if suite is not None:
            [(theirs,)] = tshark.fields(pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite")
            assert int(theirs, 16) == suite


def test_scapy_server_side_shows_its_certificates():
    [conn] = analyze_file(CAPTURES / "scapy_tls_tcp_frag.pcap").tls
    assert records(conn, "s2c") == [(22, 3636)]                   # tshark: one record over four segments
    assert [c.sans for c in conn.certificates][0] == ("*.mql5.net", "mql5.net")
    assert len(conn.certificates) == 2                             # tshark: certificates of 1646 and 1559 bytes


def test_the_side_that_sends_the_server_hello_is_the_server():
    # No SYN, both ports high, the capture begins with the server's ServerHello: the ports' guess makes
    # 10.77.0.20:8443 the client; the ServerHello says otherwise.
    pcap = CAPTURES / "backwards_nosyn_tls12.pcap"
    obs = analyze_file(pcap)
    [conn] = obs.tls
    assert (conn.flow.server, conn.flow.server_port, conn.flow.client_port) == ("10.77.0.20", 8443, 40404)
    assert records(conn, "s2c")[0] == (22, 65) and conn.server_hello.cipher_suite == 0xC02C
    assert conn.flow.packets["s2c"] > 0 and conn.flow.payload_bytes["s2c"] > conn.flow.payload_bytes["c2s"]
    if live():
        [(port, suite)] = tshark.fields(pcap, "tls.handshake.type == 2", "tcp.srcport", "tls.handshake.ciphersuite")
        assert (int(port), int(suite, 16)) == (8443, 0xC02C)
        assert tshark.records(pcap, server_port=8443) == {d: records(conn, d) for d in ("c2s", "s2c")}


# -- 5. TLS after a clear preamble --------------------------------------------------------------

# name, server port, preamble, its bytes per direction (tshark: the ClientHello's / ServerHello's relative
# sequence number minus one), SNI, the certificate's first dNSName, records per direction.
PREAMBLES = [
    ("zeek_smtp-starttls.pcap", 25, "SMTP STARTTLS", {"c2s": 35, "s2c": 224}, None, "aspmx.l.google.com", (8, 10)),
    ("starttls_smtp.pcap", 20025, "SMTP STARTTLS", {"c2s": 33, "s2c": 110}, "mail.lab.test", "mail.lab.test", (5, 9)),
    ("starttls_imap.pcap", 20143, "IMAP STARTTLS", {"c2s": 26, "s2c": 164}, "mail.lab.test", "mail.lab.test", (5, 9)),
    ("starttls_pop3.pcap", 20110, "POP3 STLS", {"c2s": 6, "s2c": 57}, "mail.lab.test", "mail.lab.test", (5, 9)),
    ("starttls_ftp.pcap", 20021, "FTP AUTH TLS", {"c2s": 10, "s2c": 66}, "mail.lab.test", "mail.lab.test", (5, 9)),
    ("postgres_sslrequest.pcap", 25432, "PostgreSQL SSLRequest", {"c2s": 8, "s2c": 1}, "mail.lab.test",
     "mail.lab.test", (5, 9)),
    ("http_connect.pcap", 23128, "HTTP CONNECT", {"c2s": 70, "s2c": 39}, "server.lab.test", "mail.lab.test", (5, 9)),
    ("socks5.pcap", 21080, "SOCKS5", {"c2s": 25, "s2c": 12}, "server.lab.test", "mail.lab.test", (5, 9)),
]


@pytest.mark.parametrize("name, port, preamble, sizes, sni, dns_name, counts", PREAMBLES)
def test_tls_after_a_clear_preamble_is_found_and_named(name, port, preamble, sizes, sni, dns_name, counts):
    pcap = CAPTURES / name
    obs = analyze_file(pcap)
    [conn] = obs.tls
    assert conn.preamble is not None and (conn.preamble.name, conn.preamble.sizes) == (preamble, sizes)
    assert (conn.client_hello.sni, conn.certificates[0].sans[0]) == (sni, dns_name)
    assert (len(records(conn, "c2s")), len(records(conn, "s2c"))) == counts
    assert obs.to_dict()["tls"][0]["preamble"] == {"name": preamble, "bytes": sizes}
    out = render.observation_text(name, obs)
    assert f"clear {preamble} before TLS ({sizes['c2s']} B ↑, {sizes['s2c']} B ↓)" in out and NO_TLS not in out
    if live():
        assert tshark.records(pcap, server_port=port) == {d: records(conn, d) for d in ("c2s", "s2c")}
        starts = tshark.fields(pcap, "tls.handshake.type == 1 || tls.handshake.type == 2", "tcp.srcport", "tcp.seq")
        assert {("s2c" if int(src) == port else "c2s"): int(seq) - 1 for src, seq in starts} == sizes
        [(names,)] = tshark.fields(pcap, "x509ce.dNSName", "x509ce.dNSName")
        assert names.split(",")[0] == dns_name


def test_smtp_starttls_has_tsharks_eighteen_records():
    [conn] = analyze_file(CAPTURES / "zeek_smtp-starttls.pcap").tls
    assert len(conn.records) == 18 and len(conn.certificates) == 3     # tshark: 18 records, 3 certificates


def test_a_hello_inside_clear_text_is_not_tls(tmp_path):
    """An upload that carries a real ClientHello record in its body, answered in clear: no preamble
    is known and the server sent no ServerHello, so the flow is not TLS (nor named as such)."""
    hello = (CAPTURES / "client_only_tls13.pcap").read_bytes()
    [conn] = analyze_file(CAPTURES / "client_only_tls13.pcap").tls
    record = conn.records[0].header + conn.records[0].fragment
    assert record in hello
    session = synth.plain_session(tmp_path, request=b"POST /upload HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                                  % len(record) + record, response=synth.http_response(b"stored\n"))
    obs = analyze_file(session.pcap)
    assert obs.tls == [] and obs.undissected == []
    assert NO_TLS in render.observation_text("plain", obs)
    if live():
        assert tshark.records(session.pcap, server_port=80) == {"c2s": [], "s2c": []}


# -- 6. not dissected, never "no TLS" ----------------------------------------------------------

def test_quic_is_named_not_dissected():
    pcap = CAPTURES / "zeek_quic-chromium-115.pcap"
    obs = analyze_file(pcap)
    assert obs.tls == []
    [quic] = obs.undissected
    assert (quic.protocol, quic.versions, [f.label for f in quic.flows]) == (
        "QUIC", ("version 1",), ["82.239.54.117:53727 → 110.213.53.115:443 udp"])
    out = render.observation_text("q", obs)
    assert "1 UDP flow looks like QUIC (version 1); not dissected" in out and NO_TLS not in out
    assert obs.to_dict()["undissected"] == [{"protocol": "QUIC", "transport": "udp", "versions": ["version 1"],
                                            "flows": ["82.239.54.117:53727 → 110.213.53.115:443 udp"]}]
    if live():
        versions = {v for (field,) in tshark.fields(pcap, "quic.version", "quic.version") for v in field.split(",")}
        assert versions == {"0x00000001"}


def test_dtls_is_named_not_dissected():
    pcap = CAPTURES / "dtls12.pcap"
    obs = analyze_file(pcap)
    [dtls] = obs.undissected
    assert (dtls.protocol, dtls.versions, len(dtls.flows)) == ("DTLS", ("version 1.2",), 1)
    out = render.observation_text("d", obs)
    assert "1 UDP flow looks like DTLS (version 1.2); not dissected" in out and NO_TLS not in out
    if live():
        rows = tshark.fields(pcap, "dtls.record", "dtls.record.version")
        versions = {v for (field,) in rows for v in field.split(",")}
        assert versions == {"0xfeff", "0xfefd"}                         # the highest: DTLS 1.2


def test_sslv2_client_hello_is_named_and_the_server_side_read():
    pcap = CAPTURES / "sslv2_client_hello.pcap"
    obs = analyze_file(pcap)
    [sslv2] = obs.undissected
    assert (sslv2.protocol, sslv2.transport, sslv2.versions) == ("SSLv2", "tcp", ("TLS 1.2",))
    [conn] = obs.tls
    assert conn.sslv2_client_hello == 0x0303 and conn.client_hello is None
    assert conn.server_hello.cipher_suite == 0x009C                    # the server answered in TLS 1.2
    out = render.observation_text("s", obs)
    assert "1 TCP flow opens with an SSLv2-format ClientHello (TLS 1.2); not dissected" in out
    if live():
        [(record, version)] = tshark.fields(pcap, "tls.record.version == 0x0002", "tls.record.version",
                                            "tls.handshake.version")
        assert (record, int(version, 16)) == ("0x0002", 0x0303)
        [(suite,)] = tshark.fields(pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite")
        assert int(suite, 16) == 0x009C


def _twice(src: Path, dest: Path, shift: int) -> None:
    """SRC's connection, then the same again 30 s later on the same four-tuple with sequence numbers
    moved by SHIFT: a port reused after the first connection closed."""
    import dpkt
    with open(src, "rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        linktype, packets = reader.datalink(), list(reader)
    with open(dest, "wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=linktype, snaplen=262144)
        for ts, frame in packets:
            writer.writepkt(frame, ts)
        for ts, frame in packets:
            eth = dpkt.ethernet.Ethernet(frame)
            segment = eth.data.data
            segment.seq = (segment.seq + shift) % (1 << 32)
            if segment.flags & dpkt.tcp.TH_ACK:
                segment.ack = (segment.ack + shift) % (1 << 32)
            segment.sum = eth.data.sum = 0
            writer.writepkt(bytes(eth), ts + 30)


@pytest.mark.parametrize("shift", [123456789, 777])
def test_a_port_reused_after_a_connection_closed_is_a_new_connection(tmp_path, shift):
    """tshark counts two tcp.streams with 15 records each; so do we (once: one connection, a made-up
    renegotiation and a hole of 123 MB)."""
    session = synth.tls_session(tmp_path, max_version="1.2", name="once")
    pcap = tmp_path / "twice.pcap"
    _twice(session.pcap, pcap, shift)
    observation = analyze_file(pcap)
    assert len(observation.flows) == 2 and len(observation.tls) == 2
    first, second = observation.tls
    assert [(r.direction, r.content_type, r.length) for r in first.records] == \
        [(r.direction, r.content_type, r.length) for r in second.records]
    assert first.renegotiation() is None and second.renegotiation() is None
    assert not any(f.holes["c2s"] or f.holes["s2c"] for f in observation.flows)
    streams = tshark.fields(pcap, "tls.record", "tcp.stream", "tls.record.length")
    per_stream: dict[str, int] = {}
    for stream, lengths in streams:
        per_stream[stream] = per_stream.get(stream, 0) + len(lengths.split(","))
    assert per_stream == {"0": len(first.records), "1": len(second.records)}
