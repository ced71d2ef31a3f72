"""labctl.tls.decrypt: the ciphertext on the wire is the message.

Each test makes its own capture with tests/synth.py (a real TLS session
between two OpenSSL contexts, written as a pcap, with the client's NSS key
log), reads the TLS records back out of the pcap, and decrypts them. The
result must be exactly what the client and server sent, and exactly what
tshark decrypts from the same pcap and key log.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import dpkt
import pytest

from cryptography.hazmat.primitives import hashes

from labctl.tls.decrypt import (APPLICATION_DATA, HANDSHAKE, SUITES, TLS12, TLS13, DecryptError, KeyLog, Plaintext,
                                Record, application_data, decrypt_connection, hkdf_expand_label, prf, suite_for)
from labctl.tls.records import walk_records
from tests import synth

BODY = bytes(range(256)) * 80      # 20 KB: several TLS records, many TCP segments


# --- reading a capture the way the analyzer will -------------------------------

@dataclass(frozen=True)
class Capture:
    records: list[Record]
    version: int | None            # None when no ServerHello is in the records
    cipher_suite: int | None
    client_random: bytes
    server_random: bytes

    def decrypt(self, keylog: KeyLog, **overrides) -> list[Plaintext]:
        args = dict(version=self.version, cipher_suite=self.cipher_suite, client_random=self.client_random,
                    server_random=self.server_random)
        args.update(overrides)
        return decrypt_connection(self.records, keylog, **args)


def split_records(direction: str, stream: bytes) -> tuple[list[Record], bytes]:
    """Cut one direction's reassembled TCP bytes into records; returns them and any incomplete tail."""
    headers = walk_records(stream)
    records = [Record(direction, h.content_type, h.version, stream[h.start:h.end]) for h in headers]
    return records, stream[headers[-1].end if headers else 0:]


def tcp_records(pcap: Path) -> list[Record]:
    """Both directions' TLS records, in the order they were complete on the wire."""
    client = None
    expected: dict[str, int] = {}
    buffers = {"c2s": b"", "s2c": b""}
    records: list[Record] = []
    with open(pcap, "rb") as handle:
        for _ts, frame in dpkt.pcap.Reader(handle):
            ip = dpkt.ethernet.Ethernet(frame).data
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
                client = (ip.src, tcp.sport)
            direction = "c2s" if (ip.src, tcp.sport) == client else "s2c"
            if tcp.flags & dpkt.tcp.TH_SYN:
                expected[direction] = (tcp.seq + 1) & 0xFFFFFFFF
                continue
            if not tcp.data:
                continue
            assert tcp.seq == expected[direction], "the synthetic pcap is in order, without gaps"
            expected[direction] = (tcp.seq + len(tcp.data)) & 0xFFFFFFFF
            done, buffers[direction] = split_records(direction, buffers[direction] + bytes(tcp.data))
            records.extend(done)
    assert buffers == {"c2s": b"", "s2c": b""}, "every record is complete"
    return records


def read_capture(pcap: Path) -> Capture:
    """Records plus what the hellos say: version, cipher suite and both randoms (RFC 8446 4.1.2-4.1.3)."""
    records = tcp_records(pcap)
    version = suite = None
    client_random = server_random = b""
    for record in records:
        if record.content_type != HANDSHAKE:
            continue
        body = record.fragment
        if record.direction == "c2s" and body[0] == 1 and not client_random:
            client_random = body[6:38]                         # type, length, legacy_version, random
        elif record.direction == "s2c" and body[0] == 2 and not server_random:
            server_random = body[6:38]
            at = 38 + 1 + body[38]                             # legacy_session_id_echo
            suite = int.from_bytes(body[at:at + 2], "big")
            version = int.from_bytes(body[4:6], "big")
            at += 3                                            # cipher_suite, legacy_compression_method
            end = at + 2 + int.from_bytes(body[at:at + 2], "big")
            at += 2
            while at < end:                                    # extensions: supported_versions (43)
                kind, size = int.from_bytes(body[at:at + 2], "big"), int.from_bytes(body[at + 2:at + 4], "big")
                if kind == 43:
                    version = int.from_bytes(body[at + 4:at + 6], "big")
                at += 4 + size
    return Capture(records, version, suite, client_random, server_random)


def keylog_of(session: synth.Session) -> KeyLog:
    assert session.keylog is not None
    return KeyLog.parse(session.keylog.read_text())


def tshark_follow(session: synth.Session) -> dict[str, bytes]:
    """What tshark decrypts: `tshark -r PCAP -o tls.keylog_file:KEYS -q -z follow,tls,raw,0`.

    The raw follow output prints one hex line per decrypted record: Node 0's
    lines flush left, the other side's indented with a tab. Which end is
    Node 0 varies (tshark 4.0 names the server for TLS 1.3 sessions), so the
    "Node 0:" line decides the directions.
    """
    proc = subprocess.run(["tshark", "-r", str(session.pcap), "-o", f"tls.keylog_file:{session.keylog}",
                           "-q", "-z", "follow,tls,raw,0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    node0 = next(line for line in lines if line.startswith("Node 0:")).split()[-1]
    ends = {f"{session.client[0]}:{session.client[1]}": ("c2s", "s2c"),
            f"{session.server[0]}:{session.server[1]}": ("s2c", "c2s")}
    assert node0 in ends, proc.stdout[:500]
    flush_left, indented = ends[node0]
    start = lines.index(next(line for line in lines if line.startswith("Node 1:"))) + 1
    out = {"c2s": b"", "s2c": b""}
    for line in lines[start:]:
        if line.startswith("====="):
            break
        out[indented if line.startswith("\t") else flush_left] += bytes.fromhex(line.strip())
    return out


# --- the sessions -------------------------------------------------------------

# name -> (tls_session keyword arguments, the suite the server must choose)
CASES: dict[str, tuple[dict, int]] = {
    "tls13-aes256-gcm": ({}, 0x1302),          # OpenSSL's first choice
    "tls13-aes128-gcm": ({"tls13_ciphersuites": "TLS_AES_128_GCM_SHA256"}, 0x1301),
    "tls13-chacha20": ({"tls13_ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}, 0x1303),
    "tls13-key-update": ({"key_update": True}, 0x1302),
    "tls12-ecdhe-rsa-aes256-gcm": ({"max_version": "1.2", "ciphers": "ECDHE-RSA-AES256-GCM-SHA384"}, 0xC030),
    "tls12-ecdhe-rsa-aes128-gcm": ({"max_version": "1.2", "ciphers": "ECDHE-RSA-AES128-GCM-SHA256"}, 0xC02F),
    "tls12-ecdhe-rsa-chacha20": ({"max_version": "1.2", "ciphers": "ECDHE-RSA-CHACHA20-POLY1305"}, 0xCCA8),
    "tls12-ecdhe-ecdsa-aes128-gcm": ({"max_version": "1.2", "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
                                      "key_type": "ecdsa"}, 0xC02B),
    "tls12-ecdhe-ecdsa-aes256-gcm": ({"max_version": "1.2", "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
                                      "key_type": "ecdsa"}, 0xC02C),
    "tls12-ecdhe-ecdsa-chacha20": ({"max_version": "1.2", "ciphers": "ECDHE-ECDSA-CHACHA20-POLY1305",
                                    "key_type": "ecdsa"}, 0xCCA9),
    "tls12-dhe-rsa-aes128-gcm": ({"max_version": "1.2", "ciphers": "DHE-RSA-AES128-GCM-SHA256"}, 0x009E),
    "tls12-dhe-rsa-aes256-gcm": ({"max_version": "1.2", "ciphers": "DHE-RSA-AES256-GCM-SHA384"}, 0x009F),
    "tls12-dhe-rsa-chacha20": ({"max_version": "1.2", "ciphers": "DHE-RSA-CHACHA20-POLY1305"}, 0xCCAA),
    "tls12-rsa-aes128-gcm": ({"max_version": "1.2", "ciphers": "AES128-GCM-SHA256"}, 0x009C),
    "tls12-rsa-aes256-gcm": ({"max_version": "1.2", "ciphers": "AES256-GCM-SHA384"}, 0x009D),
}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory):
    """Make each case's session once per module, on first use."""
    folder = tmp_path_factory.mktemp("decrypt")
    made: dict[str, synth.Session] = {}

    def get(name: str) -> synth.Session:
        if name not in made:
            try:
                made[name] = synth.tls_session(folder, name=name, response=synth.http_response(BODY),
                                               **CASES[name][0])
            except synth.OpenSSLUnavailable as exc:
                pytest.skip(f"cannot force this session with this Python/OpenSSL: {exc}")
        return made[name]

    return get


def test_cases_cover_every_supported_suite():
    assert {code for _kw, code in CASES.values()} == set(SUITES)


@pytest.mark.parametrize("name", CASES)
def test_decrypts_exactly_what_was_sent(sessions, name: str):
    session = sessions(name)
    capture = read_capture(session.pcap)
    assert capture.cipher_suite == CASES[name][1], session.cipher
    assert capture.version == (TLS13 if session.version == "TLSv1.3" else TLS12)

    plain = capture.decrypt(keylog_of(session))

    assert application_data(plain, "c2s") == session.request
    assert application_data(plain, "s2c") == session.response
    assert session.response.endswith(BODY)


@pytest.mark.parametrize("name", CASES)
def test_decryption_equals_tsharks(sessions, name: str):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    session = sessions(name)
    plain = read_capture(session.pcap).decrypt(keylog_of(session))

    theirs = tshark_follow(session)

    assert theirs["c2s"] == application_data(plain, "c2s") == session.request
    assert theirs["s2c"] == application_data(plain, "s2c") == session.response


def _handshake_types(plain: list[Plaintext], direction: str) -> list[int]:
    """Handshake message types in DIRECTION's decrypted handshake records (one message per record here)."""
    stream = b"".join(p.data for p in plain if p.direction == direction and p.content_type == HANDSHAKE)
    types, at = [], 0
    while at < len(stream):
        types.append(stream[at])
        at += 4 + int.from_bytes(stream[at + 1:at + 4], "big")
    return types


def test_tls13_plaintexts_are_the_protected_handshake_and_the_close(sessions):
    session = sessions("tls13-aes256-gcm")
    capture = read_capture(session.pcap)
    plain = capture.decrypt(keylog_of(session))

    # EncryptedExtensions, Certificate, CertificateVerify, Finished; then two NewSessionTickets.
    assert _handshake_types(plain, "s2c") == [8, 11, 15, 20, 4, 4]
    assert _handshake_types(plain, "c2s") == [20]
    # close_notify both ways: alert level 1 (warning), description 0.
    alerts = [(p.direction, p.data) for p in plain if p.content_type == 21]
    assert alerts == [("c2s", b"\x01\x00"), ("s2c", b"\x01\x00")]
    for p in plain:
        assert capture.records[p.index].content_type == APPLICATION_DATA   # TLS 1.3 hides the real type
        assert capture.records[p.index].direction == p.direction


def test_tls13_key_update_in_both_directions(sessions):
    session = sessions("tls13-key-update")
    plain = read_capture(session.pcap).decrypt(keylog_of(session))

    assert _handshake_types(plain, "c2s") == [20, 24]     # Finished, KeyUpdate(update_requested)
    assert _handshake_types(plain, "s2c")[-1] == 24       # the server's answering KeyUpdate
    assert application_data(plain, "c2s") == session.request
    assert application_data(plain, "s2c") == session.response


def test_tls12_plaintexts_start_with_finished(sessions):
    session = sessions("tls12-ecdhe-rsa-aes256-gcm")
    capture = read_capture(session.pcap)
    plain = capture.decrypt(keylog_of(session))

    for direction in ("c2s", "s2c"):
        first = next(p for p in plain if p.direction == direction)
        assert first.content_type == HANDSHAKE and first.data[0] == 20          # Finished
        assert len(first.data) == 4 + 12                                          # verify_data is 12 bytes
        assert capture.records[first.index - 1].content_type == 20               # right after ChangeCipherSpec


# --- known answers from the RFCs' examples --------------------------------------

def test_hkdf_expand_label_matches_rfc8448():
    # RFC 8448 section 3, {server} derive write traffic keys for handshake data.
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label(hashes.SHA256(), secret, b"key", b"", 16).hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label(hashes.SHA256(), secret, b"iv", b"", 12).hex() == "5d313eb2671276ee13000b30"


def test_tls12_prf_matches_the_published_sha256_vector():
    # The TLS 1.2 P_SHA256 test vector from the IETF TLS working group list (msg03416).
    out = prf(hashes.SHA256(), bytes.fromhex("9bbe436ba940f017b17652849a71db35"), b"test label",
              bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out.hex() == ("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
                         "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
                         "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
                         "87347b66")


# --- what goes wrong, and what it says -----------------------------------------

@pytest.mark.parametrize("name", ["tls13-aes256-gcm", "tls12-ecdhe-rsa-aes256-gcm"])
def test_key_log_from_another_session(sessions, tmp_path: Path, name: str):
    session = sessions(name)
    other = synth.tls_session(tmp_path, name="other", **CASES[name][0])
    capture = read_capture(session.pcap)

    with pytest.raises(DecryptError, match="key log has no secrets for this connection's client random "
                                           + capture.client_random.hex()[:16]):
        capture.decrypt(keylog_of(other))


@pytest.mark.parametrize("name", ["tls13-aes256-gcm", "tls12-ecdhe-rsa-aes256-gcm", "tls12-rsa-aes128-gcm"])
def test_right_client_random_wrong_secrets_fails_authentication(sessions, tmp_path: Path, name: str):
    session = sessions(name)
    capture = read_capture(session.pcap)
    other = keylog_of(synth.tls_session(tmp_path, name="other", **CASES[name][0]))
    forged = KeyLog({(label, capture.client_random): secret for (label, _random), secret in other.secrets.items()})

    with pytest.raises(DecryptError, match="authentication failed on record"):
        capture.decrypt(forged)


@pytest.mark.parametrize("name", ["tls13-aes256-gcm", "tls13-chacha20", "tls12-ecdhe-rsa-aes256-gcm",
                                  "tls12-ecdhe-rsa-chacha20"])
def test_tampered_ciphertext_fails_authentication(sessions, name: str):
    session = sessions(name)
    capture = read_capture(session.pcap)
    keylog = keylog_of(session)
    target = next(p.index for p in capture.decrypt(keylog) if p.direction == "c2s" and p.content_type == 23)
    record = capture.records[target]
    flipped = bytearray(record.fragment)
    flipped[len(flipped) // 2] ^= 0x01
    records = list(capture.records)
    records[target] = replace(record, fragment=bytes(flipped))

    with pytest.raises(DecryptError, match=f"authentication failed on record {target} \\(c2s"):
        replace(capture, records=records).decrypt(keylog)


@pytest.mark.parametrize("name", ["tls13-aes256-gcm", "tls12-ecdhe-rsa-aes256-gcm"])
def test_records_without_the_handshake(sessions, name: str):
    session = sessions(name)
    capture = read_capture(session.pcap)
    keylog = keylog_of(session)
    first_data = min(p.index for p in capture.decrypt(keylog) if p.content_type == APPLICATION_DATA)
    tail = capture.records[first_data:]

    # What the hellos would have said is unknown...
    unknown = read_capture_from(tail)
    assert unknown.version is None and unknown.client_random == b""
    with pytest.raises(DecryptError, match="TLS version is unknown"):
        unknown.decrypt(keylog)
    # ...and even told the right parameters, a stream that starts mid-connection is refused.
    with pytest.raises(DecryptError, match="do not include this connection's handshake"):
        replace(capture, records=tail).decrypt(keylog)


def read_capture_from(records: list[Record]) -> Capture:
    """A Capture for records that have no hellos (so nothing is known about the connection)."""
    assert not any(r.content_type == HANDSHAKE and r.fragment[:1] in (b"\x01", b"\x02") for r in records)
    return Capture(records, None, None, b"", b"")


@pytest.mark.parametrize("code", [0x002F, 0x0035, 0xC013, 0x1304, 0x0000])
def test_unsupported_suite_is_named(sessions, code: int):
    session = sessions("tls12-ecdhe-rsa-aes256-gcm")
    capture = read_capture(session.pcap)

    with pytest.raises(DecryptError, match=f"cipher suite 0x{code:04X} is not supported"):
        capture.decrypt(keylog_of(session), cipher_suite=code)


def test_suite_of_the_other_version_is_refused():
    with pytest.raises(DecryptError, match="0x1301 .* belongs to TLS 1.3, not TLS 1.2"):
        suite_for(0x1301, TLS12)


@pytest.mark.parametrize("version, message", [(0x0301, "TLS 1.0 is not supported"),
                                              (0x0302, "TLS 1.1 is not supported"),
                                              (0x7F1C, "version 0x7F1C is not supported")])
def test_old_or_unknown_versions_are_refused(version: int, message: str):
    with pytest.raises(DecryptError, match=message):
        decrypt_connection([], KeyLog(), version=version, cipher_suite=0xC02F, client_random=bytes(32),
                           server_random=bytes(32))


def test_randoms_must_be_32_bytes():
    keylog = KeyLog({("CLIENT_RANDOM", bytes(32)): bytes(48)})
    with pytest.raises(DecryptError, match="server random is 0 bytes"):
        decrypt_connection([], keylog, version=TLS12, cipher_suite=0xC02F, client_random=bytes(32),
                           server_random=b"")


# --- the key log ----------------------------------------------------------------

def test_keylog_parses_nss_format_with_comments_and_blank_lines():
    random = bytes(range(32))
    text = ("# TLS secrets log file, generated by OpenSSL / Python\n"
            "\n"
            f"CLIENT_RANDOM {random.hex()} {'ab' * 48}\n"
            f"   SERVER_TRAFFIC_SECRET_0 {random.hex().upper()} {'cd' * 32}   \n"
            "# the end\n")
    log = KeyLog.parse(text)
    assert log.secrets == {("CLIENT_RANDOM", random): bytes([0xAB]) * 48,
                           ("SERVER_TRAFFIC_SECRET_0", random): bytes([0xCD]) * 32}
    assert log.labels(random) == {"CLIENT_RANDOM", "SERVER_TRAFFIC_SECRET_0"}


def test_keylog_of_a_real_session_has_the_tls13_secrets(sessions):
    session = sessions("tls13-aes256-gcm")
    capture = read_capture(session.pcap)
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0"} <= keylog_of(session).labels(capture.client_random)


def test_split_records_keeps_an_incomplete_tail():
    stream = b"\x16\x03\x01\x00\x02ab" + b"\x17\x03\x03\x00\x05xy"
    records, tail = split_records("c2s", stream)
    assert records == [Record("c2s", 22, 0x0301, b"ab")]
    assert tail == b"\x17\x03\x03\x00\x05xy"


def test_application_data_keeps_only_type_23_of_one_direction():
    plain = [Plaintext("c2s", 0, 22, b"F"), Plaintext("c2s", 1, 23, b"GET "), Plaintext("s2c", 2, 23, b"HTTP"),
             Plaintext("c2s", 3, 23, b"/"), Plaintext("c2s", 4, 21, b"\x01\x00")]
    assert application_data(plain, "c2s") == b"GET /"
    assert application_data(plain, "s2c") == b"HTTP"

