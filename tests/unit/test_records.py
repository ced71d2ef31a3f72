"""labctl.tls.records on real bytes: the record walk, the handshake split and the hellos, checked against tshark.

The sessions are real OpenSSL handshakes written as pcaps (tests/synth.py);
the streams are read back here with dpkt alone (synth writes each direction in
order, without loss), so nothing of the analyzer is under test but the
records module itself.
"""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest

from labctl.tls.constants import (CLIENT_HELLO, EXT_KEY_SHARE, EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS,
                                  EXT_SUPPORTED_VERSIONS, HANDSHAKE, HELLO_RETRY_REQUEST, SERVER_HELLO, TLS12, TLS13)
from labctl.tls.records import (HEADER_LEN, alpn_protocols, hello_extensions, key_shares, named_groups, parse_hello,
                                server_name, split_handshake, supported_versions, walk_records)
from tests import synth, tshark


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, synth.Session]:
    tmp = tmp_path_factory.mktemp("records")
    return {"tls13": synth.tls_session(tmp, name="tls13"),
            "tls12": synth.tls_session(tmp, max_version="1.2", name="tls12"),
            "rsa-kx": synth.tls_session(tmp, max_version="1.2", ciphers="AES128-GCM-SHA256", name="rsakx")}


def streams(pcap: Path) -> dict[str, bytes]:
    """Each direction's TCP payload, joined in capture order (the port of the server is 443)."""
    out = {"c2s": b"", "s2c": b""}
    with open(pcap, "rb") as handle:
        for _ts, frame in dpkt.pcap.Reader(handle):
            tcp = dpkt.ethernet.Ethernet(frame).data.data
            out["s2c" if tcp.sport == 443 else "c2s"] += bytes(tcp.data)
    return out


def clear_handshake(stream: bytes) -> bytes:
    """The fragments of the handshake records at the start of STREAM (before encryption), joined."""
    out = b""
    for header in walk_records(stream):
        if header.content_type != HANDSHAKE:
            break
        out += stream[header.start:header.end]
    return out


def hello(session: synth.Session, direction: str) -> bytes:
    messages, _ = split_handshake(clear_handshake(streams(session.pcap)[direction]))
    return messages[0]


def hex_list(row: str) -> list[int]:
    return [int(v, 16) for v in row.split(",")] if row else []


# -- the record walk --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tls13", "tls12", "rsa-kx"])
def test_record_walk_matches_tshark(sessions, name):
    data = streams(sessions[name].pcap)
    ours = {d: [(h.content_type, h.length) for h in walk_records(data[d])] for d in data}
    assert ours == tshark.records(sessions[name].pcap)
    for stream in data.values():                # the walk covers each stream exactly, record after record
        headers = walk_records(stream)
        assert headers[0].offset == 0 and headers[-1].end == len(stream)
        assert all(a.end == b.offset for a, b in zip(headers, headers[1:]))
        assert all(h.start == h.offset + HEADER_LEN for h in headers)


def test_record_walk_stops_inside_a_record_and_says_where(sessions):
    stream = streams(sessions["tls13"].pcap)["s2c"]
    whole = walk_records(stream)
    cut = walk_records(stream[:whole[2].offset + 3])       # three bytes into the third record's header
    assert cut == whole[:2] and cut[-1].end == whole[2].offset
    assert walk_records(stream[:whole[2].end - 1]) == whole[:2]     # one byte short of the third's end


def test_record_walk_stops_where_the_bytes_stop_looking_like_tls(sessions):
    stream = streams(sessions["tls13"].pcap)["c2s"]
    first = walk_records(stream)[0]
    assert walk_records(b"GET / HTTP/1.1\r\nHost: server.lab.test\r\n\r\n") == []
    for junk in (b"\x63\x03\x03\x00\x02ab", b"\x16\x02\x00\x00\x02ab", b"\x17\x03\x03\x48\x01" + bytes(0x4801)):
        # an unknown content type, a major version other than 3, a length over 2^14 + 2048
        assert walk_records(stream[:first.end] + junk) == [first]


def test_record_walk_from_an_offset(sessions):
    stream = streams(sessions["tls12"].pcap)["s2c"]
    whole = walk_records(stream)
    assert walk_records(stream, whole[1].offset) == whole[1:]


# -- handshake messages ---------------------------------------------------------------------

@pytest.mark.parametrize("name, direction", [("tls12", "s2c"), ("tls12", "c2s"), ("tls13", "c2s"), ("tls13", "s2c")])
def test_handshake_messages_match_tshark(sessions, name, direction):
    session = sessions[name]
    messages, rest = split_handshake(clear_handshake(streams(session.pcap)[direction]))
    port = "tcp.srcport == 443" if direction == "s2c" else "tcp.dstport == 443"
    rows = tshark.fields(session.pcap, f"tls.handshake.type and {port}", "tls.handshake.type", "tls.handshake.length")
    # tshark also lists the encrypted handshake messages it cannot read (no key log): as empty types
    theirs = [(int(t), int(n)) for types, lengths in rows for t, n in zip(types.split(","), lengths.split(","))]
    assert rest == b""
    assert [(m[0], len(m) - 4) for m in messages] == theirs[:len(messages)]
    assert messages and messages[0][0] == (SERVER_HELLO if direction == "s2c" else CLIENT_HELLO)


def test_tls12_server_sends_five_messages_in_clear(sessions):
    messages, _ = split_handshake(clear_handshake(streams(sessions["tls12"].pcap)["s2c"]))
    # ServerHello, Certificate, ServerKeyExchange, ServerHelloDone; then, before its ChangeCipherSpec,
    # NewSessionTicket (RFC 5077 section 3.3)
    assert [m[0] for m in messages] == [2, 11, 12, 14, 4]


def test_handshake_split_is_the_same_however_the_bytes_arrive(sessions):
    """Messages span records and records hold several messages (RFC 8446 5.1): only the bytes count."""
    flight = clear_handshake(streams(sessions["tls12"].pcap)["s2c"])
    whole, _ = split_handshake(flight)
    for size in (1, 7, 100, 1000):
        got, rest = [], b""
        for i in range(0, len(flight), size):
            done, rest = split_handshake(rest + flight[i:i + size])
            got += done
        assert got == whole and rest == b""


def test_an_incomplete_message_is_left_for_the_next_record():
    finished = b"\x14\x00\x00\x0c" + bytes(12)                  # a Finished-sized message
    assert split_handshake(finished + b"\x0b\x00\x01") == ([finished], b"\x0b\x00\x01")
    assert split_handshake(finished + b"\x0b\x00\x00\x09abc") == ([finished], b"\x0b\x00\x00\x09abc")
    assert split_handshake(b"") == ([], b"")


# -- hellos and their extensions ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tls13", "tls12"])
def test_client_hello_matches_tshark(sessions, name):
    session = sessions[name]
    ch = parse_hello(hello(session, "c2s"))
    [row] = tshark.fields(session.pcap, "tls.handshake.type == 1", "tls.handshake.version", "tls.handshake.random",
                          "tls.handshake.session_id", "tls.handshake.ciphersuite", "tls.handshake.extension.type",
                          "tls.handshake.extensions_server_name", "tls.handshake.extensions.supported_version",
                          "tls.handshake.extensions_key_share_group", "tls.handshake.extensions_supported_group")
    version, random, session_id, suites, types, sni, versions, share_groups, groups = row
    assert ch.msg_type == CLIENT_HELLO and ch.legacy_version == int(version, 16) == TLS12
    assert ch.random.hex() == random and ch.session_id.hex() == session_id
    assert list(ch.cipher_suites) == hex_list(suites)
    assert list(ch.extensions) == [int(t) for t in types.split(",")]     # every extension, in order
    assert server_name(ch.extensions[EXT_SERVER_NAME]) == sni == synth.SERVER_NAME
    assert named_groups(ch.extensions[EXT_SUPPORTED_GROUPS]) == hex_list(groups)
    if name == "tls13":
        assert supported_versions(ch.extensions[EXT_SUPPORTED_VERSIONS], CLIENT_HELLO) == hex_list(versions)
        shares = key_shares(ch.extensions[EXT_KEY_SHARE], CLIENT_HELLO)
        assert [g for g, _ in shares] == [int(g) for g in share_groups.split(",")]     # tshark: in decimal
    else:
        assert EXT_SUPPORTED_VERSIONS not in ch.extensions and EXT_KEY_SHARE not in ch.extensions


@pytest.mark.parametrize("name", ["tls13", "tls12", "rsa-kx"])
def test_server_hello_matches_tshark(sessions, name):
    session = sessions[name]
    sh = parse_hello(hello(session, "s2c"))
    [row] = tshark.fields(session.pcap, "tls.handshake.type == 2", "tls.handshake.random",
                          "tls.handshake.ciphersuite", "tls.handshake.extensions.supported_version",
                          "tls.handshake.extensions_key_share_group", "tls.handshake.comp_method")
    random, suite, version, group, compression = row
    assert sh.msg_type == SERVER_HELLO and sh.random.hex() == random
    assert sh.cipher_suites == (int(suite, 16),) and sh.compression_methods == (int(compression),)
    if name == "tls13":
        assert supported_versions(sh.extensions[EXT_SUPPORTED_VERSIONS], SERVER_HELLO) == [int(version, 16)] == [TLS13]
        [(share_group, share)] = key_shares(sh.extensions[EXT_KEY_SHARE], SERVER_HELLO)
        assert share_group == int(group) and len(share) == 32             # x25519: a 32-byte public key
    else:
        assert not version and EXT_KEY_SHARE not in sh.extensions


def test_a_hello_cut_short_is_refused_and_its_extensions_are_none(sessions):
    message = hello(sessions["tls13"], "c2s")
    body_len = int.from_bytes(message[1:4], "big")
    for cut in (10, 40, 60):
        short = message[:1] + (cut - 4).to_bytes(3, "big") + message[4:cut]
        with pytest.raises(ValueError, match="cut short"):
            parse_hello(short)
        assert hello_extensions(short) == {}
    assert hello_extensions(None) == {}
    # cut inside the extensions: the ones before the cut are read, whole
    full = parse_hello(message).extensions
    short = message[:1] + (body_len - 30).to_bytes(3, "big") + message[4:4 + body_len - 30]
    partial = hello_extensions(short)
    assert partial and list(partial) == list(full)[:len(partial)]


def test_extension_bodies_by_hand():
    """The shapes the lab's clients do not send: ALPN, a HelloRetryRequest's key_share, a non-host_name SNI."""
    alpn = b"\x00\x0c\x02h2\x08http/1.1"                            # RFC 7301 3.1
    assert alpn_protocols(alpn) == ["h2", "http/1.1"]
    assert key_shares(b"\x00\x17", SERVER_HELLO) == [(0x0017, b"")]  # HelloRetryRequest: the group it wants
    assert server_name(b"\x00\x05\x01\x00\x02ab") is None           # name type 1 is not host_name
    assert supported_versions(b"\x04\x03\x04\x03\x03", CLIENT_HELLO) == [TLS13, TLS12]
    assert supported_versions(b"\x03\x04\x03", SERVER_HELLO) == []  # a ServerHello selects exactly one


def _draft_server_hello(version: int, tls12_layout: bool) -> bytes:
    """A ServerHello of a TLS 1.3 draft: TLS 1.2's layout from draft 22 on, the drafts' own before."""
    random = bytes(range(32))
    exts = b"\x00\x33\x00\x24\x00\x1d\x00\x20" + bytes(32)            # key_share: x25519 and its public key
    if tls12_layout:
        exts += b"\x00\x2b\x00\x02" + version.to_bytes(2, "big")         # supported_versions
        body = b"\x03\x03" + random + b"\x01\xee" + b"\x13\x01\x00"      # session id echo (1 byte), suite, null
    else:
        body = version.to_bytes(2, "big") + random + b"\x13\x01"         # version, random, suite: no more
    body += len(exts).to_bytes(2, "big") + exts
    return bytes([SERVER_HELLO]) + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize("version, tls12_layout", [(0x7F12, False), (0x7F15, False), (0x7F16, True), (0x7F1C, True),
                                                    (0xFB17, True)])
def test_a_draft_server_hello_is_read_with_its_drafts_layout(version, tls12_layout):
    """Drafts up to 21 (draft-ietf-tls-tls13-21 section 4.1.3) had no session id echo and no compression
    method; read with TLS 1.2's layout the suite's first byte would be taken for a session id length."""
    sh = parse_hello(_draft_server_hello(version, tls12_layout))
    assert sh.random == bytes(range(32)) and sh.cipher_suites == (0x1301,)
    assert (sh.session_id, sh.compression_methods) == ((b"\xee", (0,)) if tls12_layout else (b"", ()))
    assert key_shares(sh.extensions[EXT_KEY_SHARE], SERVER_HELLO) == [(0x001D, bytes(32))]
    chosen = supported_versions(sh.extensions.get(EXT_SUPPORTED_VERSIONS, b""), SERVER_HELLO)
    assert (chosen[0] if chosen else sh.legacy_version) == version


def test_a_drafts_hello_retry_request_is_read_with_its_drafts_layout():
    """Type 6, drafts before 22 (section 4.1.4): version, a cipher suite from draft 19 on, extensions."""
    ask = b"\x00\x33\x00\x02\x00\x1d"                                     # key_share: the group it asks for
    for version, suite in ((0x7F12, b""), (0x7F13, b"\x13\x02")):
        body = version.to_bytes(2, "big") + suite + len(ask).to_bytes(2, "big") + ask
        hrr = parse_hello(bytes([HELLO_RETRY_REQUEST]) + len(body).to_bytes(3, "big") + body)
        assert (hrr.legacy_version, hrr.random, hrr.cipher_suites) == (version, b"", (0x1302,) if suite else ())
        assert key_shares(hrr.extensions[EXT_KEY_SHARE], SERVER_HELLO) == [(0x001D, b"")]
